"""flightdelay: a reproducible DVC pipeline that trains, gates and packages a model of tabular data (what the
data set and its model are called is params.yaml `dataset`)."""

__version__ = "0.1.0"
