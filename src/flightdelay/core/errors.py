"""Errors a stage reports to the user as a message rather than a traceback."""


class PipelineError(Exception):
    """Base class: the message alone tells the user what went wrong and what to do."""


class DataError(PipelineError):
    """The input data cannot be used: the message names the file, the row or column and the rule."""
