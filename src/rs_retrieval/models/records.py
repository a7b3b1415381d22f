"""What a method record says about its paper and its published numbers (a leaf module: plain data).

Published numbers are copied from the tables each row names (R@1/5/10 in percent, mR as printed);
a model card shows them in a labelled "Reported in the paper" table and never puts them into its
`model-index`, which holds only numbers measured on the checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Paper:
    """A method's paper: `citation` is the one-line reference cards print, `bibtex` the entry users cite."""

    citation: str
    bibtex: str = ""
    #: The official code and its licence as published ("owner/repo (MIT)"), or why there is none.
    code: str = ""


@dataclass(frozen=True)
class ReportedResult:
    """One published row: i2t and t2i R@1/5/10 and the mR printed next to them."""

    method: str
    variant: str
    dataset: str
    i2t: tuple[float, float, float]
    t2i: tuple[float, float, float]
    printed_mr: float
    source: str
    note: str = ""

    @property
    def mean_recall(self) -> float:
        """mR recomputed from the six recalls (a few printed values disagree with their own recalls)."""
        return sum(self.i2t + self.t2i) / 6


def reported_rows(method: str, dataset: str, source: str, table: str, note: str = "") -> tuple[ReportedResult, ...]:
    """Rows from a pasted table, one `variant | i2t R@1 | R@5 | R@10 | t2i R@1 | R@5 | R@10 | mR` per line."""
    rows = []
    for line in table.strip().splitlines():
        variant, *values = (cell.strip() for cell in line.split("|"))
        numbers = [float(v) for v in values]
        rows.append(
            ReportedResult(method, variant, dataset, tuple(numbers[:3]), tuple(numbers[3:6]), numbers[6], source, note)
        )
    return tuple(rows)


#: Dataset name variants accepted by `canonical_dataset` (lower-case, separators dropped).
_DATASET_ALIASES = {
    "rsitmd": "rsitmd",
    "rsicd": "rsicd",
    "ucm": "ucm_captions",
    "ucmcaptions": "ucm_captions",
    "sydney": "sydney_captions",
    "sydneycaptions": "sydney_captions",
}


def canonical_dataset(name: str | None) -> str | None:
    """`"RSITMD"`, `"org/rsitmd"`, `"UCM-Captions"` -> the package's dataset names; unknown names pass through."""
    if name is None:
        return None
    short = name.rsplit("/", 1)[-1]
    return _DATASET_ALIASES.get("".join(ch for ch in short.lower() if ch.isalnum()), short)


def bibtex_entry(key: str, entry_type: str = "article", **fields: str) -> str:
    """A BibTeX entry from its fields, in the order given (values are written as they are)."""
    return "\n".join([f"@{entry_type}{{{key},", *(f"  {name} = {{{value}}}," for name, value in fields.items()), "}"])
