"""Folder search (text -> images, image -> captions) with an on-disk embedding cache.

Names are imported on first use: the command line imports `search.folder_search` only when a search runs.
"""

from .._lazy import lazy_exports

_EXPORTS = {".folder_search": ["SearchError", "list_images", "make_contact_sheet", "rank_captions", "search_images"]}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = _EXPORTS[".folder_search"]
