"""Training recipes; the build ships this folder as the package `rs_retrieval.recipes` (see setup.py)."""
