"""AMFMN's published retrieval numbers (the method record's "Reported in the paper" rows)."""

from ..records import reported_rows

_TABLE = "AMFMN paper (Yuan et al., TGRS 2021/22), Table II"

REPORTED_RESULTS = (
    reported_rows(
        "amfmn",
        "rsicd",
        _TABLE,
        """
        AMFMN-soft   | 5.05 | 14.53 | 21.57 | 5.05 | 19.74 | 31.04 | 16.02
        AMFMN-fusion | 5.39 | 15.08 | 23.40 | 4.90 | 18.28 | 31.44 | 16.42
        AMFMN-sim    | 5.21 | 14.72 | 21.57 | 4.08 | 17.00 | 30.60 | 15.53
    """,
        "fold averages (k-fold verify protocol)",
    )
    + reported_rows(
        "amfmn",
        "rsitmd",
        _TABLE,
        """
        AMFMN-soft   | 11.06 | 25.88 | 39.82 | 9.82 | 33.94 | 51.90 | 28.74
        AMFMN-fusion | 11.06 | 29.20 | 38.72 | 9.96 | 34.03 | 52.96 | 29.32
        AMFMN-sim    | 10.63 | 24.78 | 41.81 | 11.51 | 34.69 | 54.87 | 29.72
    """,
        "fold averages (k-fold verify protocol)",
    )
    + reported_rows(
        "amfmn",
        "ucm_captions",
        _TABLE,
        """
        AMFMN-soft   | 12.86 | 51.90 | 66.67 | 14.19 | 51.71 | 78.48 | 45.97
        AMFMN-fusion | 16.67 | 45.71 | 68.57 | 12.86 | 53.24 | 79.43 | 46.08
        AMFMN-sim    | 14.76 | 49.52 | 68.10 | 13.43 | 51.81 | 76.48 | 45.68
    """,
        "the paper's own 80/10/10 split (210 test images)",
    )
    + reported_rows(
        "amfmn",
        "sydney_captions",
        _TABLE,
        """
        AMFMN-soft   | 20.69 | 51.72 | 74.14 | 15.17 | 58.62 | 80.00 | 50.06
        AMFMN-fusion | 24.14 | 51.72 | 75.86 | 14.83 | 56.55 | 77.89 | 50.17
        AMFMN-sim    | 29.31 | 58.62 | 67.24 | 13.45 | 60.00 | 81.72 | 51.72
    """,
        "the paper's own 80/10/10 split (58 test images)",
    )
)
