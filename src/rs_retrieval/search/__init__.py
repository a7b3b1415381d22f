"""Folder search (text -> images, image -> captions) with an on-disk embedding cache."""

from .engine import SearchError, make_contact_sheet, rank_captions, search_images

__all__ = ["SearchError", "make_contact_sheet", "rank_captions", "search_images"]
