"""GaLR's published retrieval numbers (the method record's "Reported in the paper" rows)."""

from ..records import reported_rows

_TABLE = "GaLR paper (Yuan et al., TGRS 2022), Table I (read from `figure/performance.jpg` of xiaoyuan1996/GaLR)"

REPORTED_RESULTS = reported_rows(
    "galr",
    "rsicd",
    _TABLE,
    """
        GaLR w/o MR  | 6.50 | 18.91 | 29.70 | 5.11 | 19.57 | 31.92 | 18.62
        GaLR with MR | 6.59 | 19.85 | 31.04 | 4.69 | 19.48 | 32.13 | 18.96
    """,
    "MR = multivariate re-ranking post-processing",
) + reported_rows(
    "galr",
    "rsitmd",
    _TABLE,
    """
        GaLR w/o MR  | 13.05 | 30.09 | 42.70 | 10.47 | 36.34 | 53.35 | 31.00
        GaLR with MR | 14.82 | 31.64 | 42.48 | 11.15 | 36.68 | 51.68 | 31.41
    """,
    "MR = multivariate re-ranking post-processing",
)
