"""mkdocs hook: method pages show what the method registry says, so the docs and the registry cannot drift.

`<!-- method-record NAME -->` in a page becomes the record of method NAME (paper, reference code, summary,
what the package offers for it, BibTeX, the numbers its authors published); `<!-- method-table -->` becomes one
row per registered method. The record is declared once, in the method folder's `register_method` call.
"""

from __future__ import annotations

import re

from rs_retrieval.models import get_method, list_methods

MARKER = re.compile(r"<!-- method-(record (?P<name>[\w-]+)|table) -->")
RECALLS = ("R@1", "R@5", "R@10")


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _zero_shot(method) -> str:
    """Plain transformers checkpoints (CLIP, SigLIP) are served by transformers' own zero-shot pipeline."""
    return "yes (transformers' own)" if not method.auto_classes else _yes(method.zero_shot)


def _results_table(method) -> list[str]:
    if not method.reported_results:
        return [method.reported_note] if method.reported_note else []
    header = [
        "variant",
        "dataset",
        *(f"i2t {k}" for k in RECALLS),
        *(f"t2i {k}" for k in RECALLS),
        "mR",
        "source",
        "note",
    ]
    lines = [
        "Published by the authors (copied from the source each row names; not measured by `rs_retrieval`):",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for row in method.reported_results:
        numbers = [f"{value:.2f}" for value in (*row.i2t, *row.t2i, row.printed_mr)]
        cells = [row.variant, row.dataset, *numbers, row.source, row.note]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return [*lines, *([method.reported_note] if method.reported_note else [])]


def render_record(name: str) -> str:
    method = get_method(name)
    paper = method.paper
    lines = []
    if paper is not None:
        lines += [f"**Paper.** {paper.citation}", ""]
        if paper.code:
            lines += [f"**Reference code.** {paper.code}", ""]
    if method.summary:
        lines += [method.summary, ""]
    converter = f"`rs-retrieval convert --method {name}`" if method.converter else "none"
    lines += [
        "| registry record | |",
        "|---|---|",
        f"| `model_type` | `{name}` |",
        f"| zero-shot pipeline | {_zero_shot(method)} |",
        f"| official-checkpoint converter | {converter} |",
        f"| default recipe | {f'`{method.default_recipe}`' if method.default_recipe else 'none'} |",
        f"| reconstruction | {'yes: ' + method.reconstruction_note if method.reconstructed else 'no'} |",
        "",
    ]
    if paper is not None and paper.bibtex:
        lines += [
            '??? quote "BibTeX"',
            "    ```bibtex",
            *(f"    {line}" for line in paper.bibtex.splitlines()),
            "    ```",
            "",
        ]
    return "\n".join(lines + _results_table(method))


def render_table() -> str:
    lines = ["| method | what it is | zero-shot pipeline | converter | reconstruction |", "|---|---|---|---|---|"]
    for name in list_methods():
        method = get_method(name)
        lines.append(
            f"| `{name}` | {method.title or name} | {_zero_shot(method)} | {_yes(method.converter is not None)} "
            f"| {_yes(method.reconstructed)} |"
        )
    return "\n".join(lines)


def on_page_markdown(markdown: str, page, config, files) -> str:
    return MARKER.sub(lambda m: render_record(m["name"]) if m["name"] else render_table(), markdown)
