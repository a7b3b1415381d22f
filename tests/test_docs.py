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
CHECKED = ("src", "configs", "hub_cards", "scripts", "docs_hooks")
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
    amfmn = (tmp_path / "site" / "methods" / "amfmn" / "index.html").read_text(encoding="utf-8")
    assert "doi:10.1109/TGRS.2021.3078451" in amfmn and "yuan2022amfmn" in amfmn  # the record, rendered by the hook


def test_method_pages_show_the_registry_record(monkeypatch):
    """Each method page shows its registry record (docs_hooks/method_records.py), and the home page lists every
    registered method, so the docs cannot drift from the register_method calls."""
    monkeypatch.syspath_prepend(str(ROOT / "docs_hooks"))
    import method_records

    from rs_retrieval.models import get_method, list_methods

    packaged = [name for name in list_methods() if get_method(name).model_class.__module__.startswith("rs_retrieval.")]
    assert {"amfmn", "galr", "msa", "cmpagl", "clip"} <= set(packaged)  # (tests may register toy methods too)
    for name in packaged:
        method = get_method(name)
        if not method.auto_classes:  # CLIP and SigLIP share the CLIP family page
            continue
        page = (ROOT / "docs" / "methods" / f"{name}.md").read_text(encoding="utf-8")
        assert f"<!-- method-record {name} -->" in page, name
        rendered = method_records.on_page_markdown(page, None, None, None)
        assert "<!-- method-record" not in rendered
        assert method.paper.citation in rendered and method.summary in rendered, name
        assert ("reconstruction | yes: " in rendered) == method.reconstructed, name
        for row in method.reported_results:
            assert f"| {row.variant} | {row.dataset} | {row.i2t[0]:.2f} |" in rendered, (name, row.variant)
    home = method_records.on_page_markdown((ROOT / "docs" / "index.md").read_text(encoding="utf-8"), None, None, None)
    for name in packaged:
        assert f"| `{name}` | {get_method(name).title} |" in home, name
