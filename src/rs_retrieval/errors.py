"""The package's error root: every typed error a user can cause derives from `RSRetrievalError`.

The CLI prints these as one `error: ...` line (traceback only with `--debug`); anything else is a bug
and keeps its traceback.
"""


class RSRetrievalError(Exception):
    """Base of the errors that describe bad input, a missing file or a missing optional engine."""


class MissingExtraError(RSRetrievalError, ImportError):
    """A command needs an optional engine that is not installed; the message names the pip extra."""


class OutputExistsError(RSRetrievalError, FileExistsError):
    """The output folder already exists and the command was not told to replace or continue it."""
