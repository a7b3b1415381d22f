"""Hub card templates; the build ships this folder as the package `rs_retrieval.card_templates` (see setup.py)."""
