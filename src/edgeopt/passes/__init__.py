"""Optimization passes, one per module, loaded lazily through `edgeopt.registry`."""
