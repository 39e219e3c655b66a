"""Example plugins, enabled from plugins.toml; copy one to start your own."""
