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


class UsageError(RSRetrievalError, ValueError):
    """A command-line argument names something that does not exist or does not fit the input."""


class InputNotFoundError(UsageError, FileNotFoundError):
    """A file or folder named on the command line does not exist or is not what the command reads."""


class DiskFullError(RSRetrievalError, OSError):
    """The disk (or quota) ran out while writing; the message names what was not written and what is intact."""
