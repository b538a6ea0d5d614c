"""flightdelay: a reproducible DVC pipeline that predicts late flight arrivals from tabular data."""

__version__ = "0.1.0"
