"""Default plugins: Quartet's own features, shipped as plugins."""
