"""MAPPO for the four-agent AlgoSpace trading team on Ray RLlib's new API stack.

Importing this package does not import Ray; submodules that need it do so.
"""
__version__ = "0.1.0"
