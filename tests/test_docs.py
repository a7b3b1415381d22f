"""The documentation: the site builds with `mkdocs build --strict` (no missing page, link or anchor), and
the package's comments cite papers or pages of `docs/`, never a file outside the repository."""

import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: What a maintainer with only this repository ships and reads: the package, its recipes and card templates, scripts.
CHECKED = ("src", "configs", "hub_cards", "scripts")
TEXT_SUFFIXES = {".py", ".yaml", ".yml", ".json", ".md", ".txt", ".html", ".css", ".js"}
OUTSIDE = re.compile(
    r"shared/specs|\.\./shared|/work/|\bspecs/"
    r"|(?<![\w/.-])(?:amfmn|galr|msa|cmpagl|clip-family|evaluation|datasets|hf-ecosystem)\.md"  # a bare spec file name
    r"|§"  # section signs of the specs; papers are cited as "Sec.", "Eq." and "Table"
)
DOCS_CITATION = re.compile(r"docs/([\w./*-]+\.md)(?:#([\w-]+))?")


def checked_files():
    for folder in CHECKED:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and path.suffix in TEXT_SUFFIXES and "__pycache__" not in path.parts:
                yield path


def outside_citations(text: str) -> list[str]:
    return [match.group(0) for match in OUTSIDE.finditer(text)]


def slug(heading: str) -> str:
    """The anchor Python-Markdown's `toc` extension gives a heading (its default slugify)."""
    text = heading.replace("`", "").replace("*", "")  # inline markup is not part of the text
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return {slug(line.lstrip("#").strip()) for line in text.splitlines() if re.match(r"#{1,6} ", line)}


def test_slug_matches_the_toc_extension():
    assert slug("GaLR's multivariate re-rank (`galr_mr`)") == "galrs-multivariate-re-rank-galr_mr"
    assert slug("Image → captions") == "image-captions"
    assert slug("What the quickstart does, and where things land") == "what-the-quickstart-does-and-where-things-land"


def test_the_source_cites_no_file_outside_the_repository():
    found = {
        str(path.relative_to(ROOT)): hits
        for path in checked_files()
        if (hits := outside_citations(path.read_text(encoding="utf-8", errors="ignore")))
    }
    assert not found, f"cite the paper or a page of docs/ instead: {found}"


def test_outside_citations_are_recognised():
    for old in (
        "(`amfmn.md` §10)",
        "see ../shared/specs/msa.md",
        "(clip-family.md 2.3)",
        "`specs/datasets.md`",
        "/work/shared/data",
    ):
        assert outside_citations(old), old
    for fine in ("docs/methods/amfmn.md#dynamic-margin", "(AMFMN paper Eq. 29-30)", "docs/evaluation.md", "README.md"):
        assert not outside_citations(fine), fine


def test_every_cited_docs_page_and_anchor_exists():
    missing = []
    for path in checked_files():
        for page, anchor in DOCS_CITATION.findall(path.read_text(encoding="utf-8", errors="ignore")):
            pages = sorted((ROOT / "docs").glob(page))  # "docs/methods/*.md" cites every method page
            if not pages:
                missing.append(f"{path.relative_to(ROOT)}: docs/{page}")
            elif anchor and not any(anchor in anchors(p) for p in pages):
                missing.append(f"{path.relative_to(ROOT)}: docs/{page}#{anchor}")
    assert not missing, missing


def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocs", reason="the docs extra (pip install -e '.[docs]') is not installed")
    pytest.importorskip("mkdocstrings", reason="the docs extra (pip install -e '.[docs]') is not installed")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stderr[-4000:]
    api = (tmp_path / "site" / "api" / "evaluation" / "index.html").read_text(encoding="utf-8")
    assert "retrieval_metrics" in api and "tie_policy" in api  # the API pages are rendered from the docstrings
