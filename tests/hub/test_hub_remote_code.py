"""`bundle`: flat remote code with rewritten imports and auto_map (loading it without the package is
checked in test_hub_roundtrip.py)."""

import ast
import json
import re
import textwrap
from pathlib import Path

import pytest
from hub_server import import_tiny_package, make_tiny_model

from rs_retrieval.hub.remote_code import (
    BundleError,
    SourceModule,
    _Collector,
    _flat_names,
    _locate,
    bundle,
    read_bundle,
)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    import_tiny_package(tmp_path_factory.mktemp("pkg"))
    model, processor = make_tiny_model()
    out = tmp_path_factory.mktemp("saved")
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out, bundle(out, model, processor)


def _imports(source: str) -> list[ast.ImportFrom | ast.Import]:
    return [n for n in ast.walk(ast.parse(source)) if isinstance(n, (ast.Import, ast.ImportFrom))]


def test_bundle_is_one_file_holding_the_import_closure_under_unique_flat_names(saved):
    out, auto_map = saved
    assert sorted(p.name for p in out.glob("*.py")) == ["modeling_tiny.py"]
    sources, exports = read_bundle(out / "modeling_tiny.py")
    # tinyhub/layers/utils.py and tinyhub/models/utils.py clash on "utils"; rs_retrieval's base pulls
    # in outputs, the push mixin and the allocator tuning it applies on the first model (top-level
    # imports) and towers (imported inside a method); processing pulls in imagery (with its errors
    # and the multispectral scalings), the model/processor pairing check, and the tokenizer families
    # (the shared interface and WordPiece; AMFMN/GaLR's word tokenizer lives in models/amfmn_family).
    assert sorted(sources) == [
        "base",
        "configuration_tiny",
        "errors",
        "imagery",
        "layers_utils",
        "modeling_tiny",
        "models_utils",
        "multispectral",
        "outputs",
        "pairing",
        "processing",
        "processing_tiny",
        "push_to_hub",
        "runtime",
        "tokenizer_families",
        "towers",
    ]
    assert exports == {
        "TinyHubConfig": "configuration_tiny",
        "TinyHubModel": "modeling_tiny",
        "TinyHubProcessor": "processing_tiny",
        "RSImageProcessor": "processing",
    }
    assert auto_map == {
        "AutoConfig": "modeling_tiny.TinyHubConfig",
        "AutoModel": "modeling_tiny.TinyHubModel",
        "AutoProcessor": "modeling_tiny.TinyHubProcessor",
        "AutoImageProcessor": "modeling_tiny.RSImageProcessor",
    }


def test_bundled_imports_are_flat_and_same_package(saved):
    out, _ = saved
    sources, _ = read_bundle(out / "modeling_tiny.py")
    for name, source in sources.items():
        for node in _imports(source):
            if isinstance(node, ast.ImportFrom) and node.level:
                assert node.level == 1, f"{name}:{node.lineno} keeps a parent-relative import"
                targets = [node.module] if node.module else [a.name for a in node.names]
                assert set(targets) <= set(sources), f"{name}:{node.lineno} imports {targets}, not bundled"
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            assert not any(n.split(".")[0] in ("rs_retrieval", "tinyhub") for n in names), f"{name}:{node.lineno}"


def test_rewritten_source_keeps_everything_but_the_imports(saved):
    out, _ = saved
    sources, _ = read_bundle(out / "modeling_tiny.py")
    modeling = sources["modeling_tiny"]
    assert "from .base import RetrievalPreTrainedModel\n" in modeling
    assert "from . import layers_utils as layer_utils\n" in modeling
    assert "from .models_utils import flatten_patches\n" in modeling
    assert "from .configuration_tiny import TinyHubConfig\n" in modeling
    original = _locate("tinyhub.models.tiny.modeling_tiny").path.read_text()
    strip = lambda text: "\n".join(l for l in text.splitlines() if not re.match(r"\s*(from|import) ", l)).strip()
    assert strip(modeling) == strip(original)
    assert "        from .towers import load_tower_weights\n" in sources["base"]  # indented import inside a method


def test_transformers_sees_one_file_with_standard_library_imports_only(saved):
    from transformers.dynamic_module_utils import get_imports, get_relative_imports

    out, _ = saved
    bundle_file = out / "modeling_tiny.py"
    assert get_relative_imports(bundle_file) == []  # nothing else to download: one review notice
    assert set(get_imports(bundle_file)) == {"importlib", "linecache", "sys"}


def test_bundle_imports_in_a_fresh_package_and_rehomes_the_exported_classes(saved, tmp_path, monkeypatch):
    import importlib
    import sys

    out, _ = saved
    package = tmp_path / "remote_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "modeling_tiny.py").write_text((out / "modeling_tiny.py").read_text())
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("remote_pkg.modeling_tiny")
    try:
        model_class = module.TinyHubModel
        assert model_class.__module__ == "remote_pkg.modeling_tiny"  # save_pretrained copies this one file
        assert sys.modules["remote_pkg.modeling_tiny_modules.base"].RetrievalPreTrainedModel in model_class.__mro__
        with pytest.raises(AttributeError, match="no attribute 'Missing'"):
            module.Missing  # noqa: B018  (the attribute access is what raises)
    finally:
        sys.meta_path[:] = [
            f for f in sys.meta_path if getattr(f, "package", None) != "remote_pkg.modeling_tiny_modules"
        ]
        for name in [n for n in sys.modules if n.startswith("remote_pkg")]:
            del sys.modules[name]


def test_auto_map_is_written_into_each_saved_config(saved):
    out, auto_map = saved
    config = json.loads((out / "config.json").read_text())
    assert config["auto_map"] == auto_map and config["model_type"] == "tiny_hub_test"
    processor = json.loads((out / "processor_config.json").read_text())
    assert processor["auto_map"] == {"AutoProcessor": "modeling_tiny.TinyHubProcessor"}
    assert processor["image_processor"]["auto_map"] == {"AutoImageProcessor": "modeling_tiny.RSImageProcessor"}
    tokenizer = json.loads((out / "tokenizer_config.json").read_text())
    assert tokenizer["auto_map"] == {"AutoProcessor": "modeling_tiny.TinyHubProcessor"}


def test_bundle_requires_saved_files(tmp_path, saved):
    model, processor = make_tiny_model()
    with pytest.raises(FileNotFoundError, match="config.json"):
        bundle(tmp_path, model, processor)
    model.save_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="processor_config.json"):
        bundle(tmp_path, model, processor)


def _write(root, files):
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))


@pytest.mark.parametrize(
    "source, message",
    [
        ("from .helpers import *\n", "import \\*"),
        ("import badpkg.helpers\n", "binds the top-level package"),
        ("from ...outside import x\n", "beyond top-level package"),
        ("from .missing import x\n", "'badpkg.missing', which has no source file"),
    ],
)
def test_unbundlable_imports_raise_with_file_and_line(tmp_path, monkeypatch, source, message):
    _write(
        tmp_path, {"badpkg/__init__.py": "", "badpkg/helpers.py": "x = 1\n", "badpkg/mod.py": "import os\n" + source}
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(BundleError, match=message) as info:
        _Collector({"badpkg"}).add(_locate("badpkg.mod"))
    assert f"{tmp_path / 'badpkg' / 'mod.py'}:2" in str(info.value)


def test_flat_names_grow_only_for_clashing_modules():
    modules = [SourceModule(n, Path("/x.py")) for n in ("a.x.utils", "b.x.utils", "a.y.utils", "a.core")]
    assert _flat_names(modules) == {
        "a.x.utils": "a_x_utils",
        "b.x.utils": "b_x_utils",
        "a.y.utils": "y_utils",
        "a.core": "core",
    }
    with pytest.raises(BundleError, match="distinct flat module names"):
        _flat_names([SourceModule(n, Path("/x.py")) for n in ("a_b.c", "a.b.c", "q.b.c")])
