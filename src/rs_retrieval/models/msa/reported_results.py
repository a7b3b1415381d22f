"""MSA's published retrieval numbers (the method record's "Reported in the paper" rows)."""

from ..records import reported_rows

_LOG = "training log `log` of yr666666/MSA (commit 51bf219)"

REPORTED_RESULTS = reported_rows(
    "msa",
    "rsitmd",
    _LOG,
    """
    MSA (ResNet-50 + BERT), best epoch 50 | 16.59 | 40.04 | 51.33 | 15.53 | 44.20 | 60.80 | 38.08
    MSA (ResNet-50 + BERT), last epoch 60 | 14.82 | 37.39 | 50.00 | 14.96 | 43.72 | 60.44 | 36.89
""",
    "single run with the epoch chosen on the test split; these are NOT the MSA paper's numbers",
)

#: Where the rows come from, since the paper's own tables are not among them.
REPORTED_NOTE = (
    "The MSA paper's own result tables (arXiv 2405.18959) were not available to us; the rows above come "
    "from the training log in the official repository."
)
