"""Typed errors for dataset sources; each message names the file and what is wrong with it."""

from ..errors import RSRetrievalError


class DatasetFormatError(RSRetrievalError, ValueError):
    """A dataset source is malformed (bad JSON, wrong caption counts, inconsistent files)."""


class DatasetNotFoundError(DatasetFormatError, FileNotFoundError):
    """The folder holds no recognisable source, or a file the source needs is missing."""


class MissingFieldError(DatasetFormatError):
    """A record of a Karpathy-style JSON lacks a required field."""


class CaptionCountError(DatasetFormatError):
    """An image does not have exactly five captions, or caption and file-name lists disagree."""


class MissingImageError(DatasetFormatError, FileNotFoundError):
    """Image files named by the annotations are not in the image folder."""


class CorruptImageError(DatasetFormatError):
    """An image file exists but PIL cannot read it."""


class UnknownSplitError(DatasetFormatError):
    """A split was requested that the dataset does not have."""
