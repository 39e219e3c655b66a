"""Quartet's plugin system (pluggy project ``quartet``).

:mod:`plugins.hookspecs` is the contract, :mod:`plugins.manager` builds and
calls the plugin manager, :mod:`plugins.builtin` holds the default plugins.
"""
