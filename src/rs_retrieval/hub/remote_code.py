"""Remote-code bundles: a saved model directory that loads with `trust_remote_code=True` on a
machine where `rs_retrieval` is not installed.

transformers downloads the module named in `auto_map` plus the files it finds through lines of the
form `from .name import ...` (same directory only), and prints a "review this code" notice per
downloaded file. Our model files import parent modules (`from ..common.base import ...`) and test or user
code may import `rs_retrieval` absolutely, so `save_pretrained`'s own copy is not enough.
`bundle` follows every import that points into the bundled packages (with `ast`), rewrites those
imports to same-package relative ones under unique flat module names, and writes ONE Python file
that holds every module's source as a readable list of lines: on import it registers a finder that
compiles them as submodules of `<file>_modules`, and it exports the Auto classes. One file means one
download and one notice; `auto_map` in the saved configs points into it.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import RSRetrievalError
from ..fileio import atomic_write_text

#: The package whose modules are always bundled (our models import its shared modules).
PACKAGE = "rs_retrieval"


class BundleError(RSRetrievalError, ValueError):
    """A module cannot be turned into flat remote code (the message names file and line)."""


@dataclass(frozen=True)
class SourceModule:
    """One module of a bundled package: its dotted name and file."""

    name: str
    path: Path

    @property
    def is_package(self) -> bool:
        return self.path.name == "__init__.py"

    @property
    def package(self) -> str:
        """The package that relative imports in this module are resolved against."""
        return self.name if self.is_package else self.name.rpartition(".")[0]


@dataclass(frozen=True)
class _ImportTarget:
    """Where one imported name lives: `module` binds a whole module when `binds_module`."""

    module: str
    name: str | None
    asname: str | None
    binds_module: bool


def _locate(name: str) -> SourceModule | None:
    """The source file of module `name`, found on disk without importing it (None if absent)."""
    top, _, rest = name.partition(".")
    spec = importlib.util.find_spec(top)
    if spec is None or spec.origin is None:
        return None
    origin = Path(spec.origin)
    if not rest:
        return SourceModule(name, origin) if origin.suffix == ".py" else None
    if origin.name != "__init__.py":
        return None
    base = origin.parent.joinpath(*rest.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return SourceModule(name, candidate)
    return None


class _Collector:
    """Transitive closure of the modules that `roots` import from the bundled packages."""

    def __init__(self, packages: set[str]):
        self.packages = packages
        self.modules: dict[str, SourceModule] = {}
        #: Per module: (import node, resolved targets) for every import into the bundled packages.
        self.imports: dict[str, list[tuple[ast.stmt, list[_ImportTarget]]]] = {}

    def in_bundle(self, dotted: str) -> bool:
        return dotted.split(".")[0] in self.packages

    def add(self, module: SourceModule) -> None:
        pending = [module]
        while pending:
            current = pending.pop()
            if current.name in self.modules:
                continue
            self.modules[current.name] = current
            found = self._scan(current)
            self.imports[current.name] = found
            for _, targets in found:
                pending.extend(_locate(t.module) for t in targets)

    def _scan(self, module: SourceModule) -> list[tuple[ast.stmt, list[_ImportTarget]]]:
        source = module.path.read_text(encoding="utf-8")
        tree = ast.parse(source, filename=str(module.path))
        found = []
        for node in ast.walk(tree):
            where = f"{module.path}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    try:
                        base = importlib.util.resolve_name("." * node.level + (node.module or ""), module.package)
                    except ImportError as err:
                        raise BundleError(f"{where}: {err}") from err
                elif node.module and self.in_bundle(node.module):
                    base = node.module
                else:
                    continue
                if not self.in_bundle(base):
                    raise BundleError(f"{where}: relative import leaves the bundled packages ({base!r})")
                if _locate(base) is None:
                    raise BundleError(f"{where}: imports {base!r}, which has no source file to bundle")
                targets = []
                for alias in node.names:
                    if alias.name == "*":
                        raise BundleError(
                            f"{where}: `from {base} import *` cannot be bundled; import names explicitly"
                        )
                    submodule = f"{base}.{alias.name}"
                    if _locate(submodule) is not None:
                        targets.append(_ImportTarget(submodule, None, alias.asname or alias.name, True))
                    else:
                        targets.append(_ImportTarget(base, alias.name, alias.asname, False))
                found.append((node, targets))
            elif isinstance(node, ast.Import):
                bundled = [a for a in node.names if self.in_bundle(a.name)]
                if not bundled:
                    continue
                if len(bundled) != len(node.names) or any(a.asname is None for a in bundled):
                    raise BundleError(
                        f"{where}: `import {', '.join(a.name for a in node.names)}` binds the top-level package; "
                        "use `import package.module as name` or `from package.module import name`"
                    )
                for alias in bundled:
                    if _locate(alias.name) is None:
                        raise BundleError(f"{where}: imports {alias.name!r}, which has no source file to bundle")
                found.append((node, [_ImportTarget(a.name, None, a.asname, True) for a in bundled]))
        return found


def _flat_names(modules: Iterable[SourceModule]) -> dict[str, str]:
    """Shortest unique flat module name per module: the last dotted part, growing on clashes."""
    parts = {m.name: m.name.split(".") for m in modules}
    depth = dict.fromkeys(parts, 1)
    while True:
        chosen = {name: "_".join(p[-depth[name] :]) for name, p in parts.items()}
        clashes: dict[str, list[str]] = {}
        for name, flat in chosen.items():
            clashes.setdefault(flat, []).append(name)
        groups = [names for names in clashes.values() if len(names) > 1]
        if not groups:
            return chosen
        for names in groups:
            growable = [name for name in names if depth[name] < len(parts[name])]
            if not growable:
                raise BundleError(f"cannot give {sorted(names)} distinct flat module names")
            for name in growable:
                depth[name] += 1


def _render_import(targets: list[_ImportTarget], flat: dict[str, str]) -> str:
    """One statement (or `;`-joined statements, valid wherever the original stood) with flat imports."""
    statements = []
    by_module: dict[str, list[str]] = {}
    for target in targets:
        if target.binds_module:
            statements.append(f"from . import {flat[target.module]} as {target.asname}")
        else:
            alias = f"{target.name} as {target.asname}" if target.asname else target.name
            by_module.setdefault(flat[target.module], []).append(alias)
    statements = [f"from .{module} import {', '.join(names)}" for module, names in by_module.items()] + statements
    return "; ".join(statements)


def _rewrite(module: SourceModule, imports, flat: dict[str, str]) -> str:
    """The module's source with bundled imports made flat (same-package relative)."""
    raw = module.path.read_bytes()
    # Byte offset of each line start, with the line ends `ast` counts (not str.splitlines' wider set).
    offsets = [0] + [match.end() for match in re.finditer(rb"\r\n|\r|\n", raw)]
    edits = []
    for node, targets in imports:
        start = offsets[node.lineno - 1] + node.col_offset
        end = offsets[node.end_lineno - 1] + node.end_col_offset
        edits.append((start, end, _render_import(targets, flat).encode("utf-8")))
    for start, end, text in sorted(edits, reverse=True):
        raw = raw[:start] + text + raw[end:]
    return raw.decode("utf-8")


#: Runs when the bundle file is imported: a finder for its `<name>_modules` package, lazy exports.
_BUNDLE_RUNTIME = '''

class _BundleImporter(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports the modules in `_SOURCES` as submodules of `package` (source shown in tracebacks)."""

    def __init__(self, package):
        self.package = package

    def find_spec(self, fullname, path=None, target=None):
        parent, _, name = fullname.rpartition(".")
        if fullname == self.package:
            return importlib.util.spec_from_loader(fullname, self, is_package=True)
        if parent == self.package and name in _SOURCES:
            return importlib.util.spec_from_loader(fullname, self, origin=self.filename(name))
        return None

    def filename(self, name):
        return f"<{self.package}/{name}.py>"

    def get_source(self, fullname):
        return "\\n".join(_SOURCES[fullname.rpartition(".")[2]]) + "\\n"

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        if module.__name__ == self.package:
            module.__path__ = []
            return
        filename = self.filename(module.__name__.rpartition(".")[2])
        source = self.get_source(module.__name__)
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        exec(compile(source, filename, "exec"), module.__dict__)


_PACKAGE = __name__ + "_modules"
# A re-import (a newer revision of this file) replaces the previous finder and modules.
sys.meta_path[:] = [finder for finder in sys.meta_path if getattr(finder, "package", None) != _PACKAGE]
for _name in [name for name in sys.modules if name == _PACKAGE or name.startswith(_PACKAGE + ".")]:
    del sys.modules[_name]
sys.meta_path.insert(0, _BundleImporter(_PACKAGE))


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{_PACKAGE}.{_EXPORTS[name]}"), name)
    value.__module__ = __name__  # save_pretrained copies this file and refers to the class through it
    globals()[name] = value
    return value
'''


def render_bundle(sources: dict[str, str], exports: dict[str, str], origin: str) -> str:
    """The single remote-code file: `sources` (flat module name -> source) and `exports` (class name
    -> flat module) of the packages named in `origin`, stored as lists of lines so that no embedded
    line is an import that transformers' dependency scan would follow."""
    lines = [
        f'"""Remote code generated by rs_retrieval: {len(sources)} modules of {origin} in one file, so that',
        "`trust_remote_code=True` downloads (and asks you to review) one file. Each module's source is below as",
        "a list of lines, unchanged except that imports between them are same-package relative imports.",
        '"""',
        "",
        "import importlib",
        "import importlib.abc",
        "import importlib.util",
        "import linecache",
        "import sys",
        "",
        "_SOURCES = {",
    ]
    for name, source in sources.items():
        lines.append(f"    {name!r}: [")
        lines += [f"        {line!r}," for line in source.splitlines()]
        lines.append("    ],")
    lines += ["}", f"_EXPORTS = {exports!r}"]
    return "\n".join(lines) + "\n" + _BUNDLE_RUNTIME


def read_bundle(path: str | Path) -> tuple[dict[str, str], dict[str, str]]:
    """(sources, exports) of a bundle file written by `bundle`, without importing it."""
    values = {}
    for node in ast.parse(Path(path).read_text(encoding="utf-8")).body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and getattr(node.targets[0], "id", None) in ("_SOURCES", "_EXPORTS")
        ):
            values[node.targets[0].id] = ast.literal_eval(node.value)
    if set(values) != {"_SOURCES", "_EXPORTS"}:
        raise BundleError(f"{path} is not an rs_retrieval remote-code bundle")
    return {name: "\n".join(lines) + "\n" for name, lines in values["_SOURCES"].items()}, values["_EXPORTS"]


def _class_module(cls: type) -> SourceModule:
    module = sys.modules.get(cls.__module__)
    path = getattr(module, "__file__", None)
    if cls.__module__ == "__main__" or path is None:
        raise BundleError(f"{cls.__qualname__} is defined in {cls.__module__!r}, which has no importable source file")
    found = _locate(cls.__module__)
    if found is None or found.path.resolve() != Path(path).resolve():
        raise BundleError(f"{cls.__qualname__}: module {cls.__module__!r} is not importable from {path}")
    return found


def zero_shot_class(config_class: type):
    """The model class registered for `zero-shot-image-classification` with `config_class`, or None."""
    from transformers import AutoModelForZeroShotImageClassification

    try:
        return AutoModelForZeroShotImageClassification._model_mapping[config_class]
    except KeyError:
        return None


def _write_auto_map(
    path: Path, auto_map: dict, keys: Iterable[str], nested: dict[str, list[str]] | None = None
) -> None:
    """Merge the `keys` entries of `auto_map` into the JSON file's `auto_map` (and into nested sub-dicts)."""
    data = json.loads(path.read_text(encoding="utf-8"))

    def merge(target: dict, wanted: Iterable[str]) -> None:
        entries = {k: auto_map[k] for k in wanted if k in auto_map}
        if entries:
            target.setdefault("auto_map", {}).update(entries)

    merge(data, keys)
    for key, wanted in (nested or {}).items():
        if isinstance(data.get(key), dict):
            merge(data[key], wanted)
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def bundle(model_dir: str | Path, model=None, processor=None, packages: Iterable[str] = ()) -> dict:
    """Write the code of `model` and/or `processor` into `model_dir` as one remote-code file
    (`render_bundle`) and write `auto_map`.

    `model_dir` must already hold `save_pretrained` output (config.json for a model; processor_config.json for a
    processor). Bundled packages are `rs_retrieval`, the packages defining the model, config and processor classes, and
    `packages`; the image processor and tokenizer get `auto_map` entries when their classes come from those packages.
    Returns the `auto_map` written to config.json.
    """
    model_dir = Path(model_dir)
    config_path = model_dir / "config.json"
    if model is None and processor is None:
        raise ValueError("bundle needs a model, a processor or both")
    if model is not None and not config_path.is_file():
        raise FileNotFoundError(f"{config_path} not found: save the model with save_pretrained before bundling")
    roots = {"AutoConfig": type(model.config), "AutoModel": type(model)} if model is not None else {}
    image_processor = getattr(processor, "image_processor", None) if processor is not None else None
    if processor is not None:
        roots["AutoProcessor"] = type(processor)
    bundled = {PACKAGE, *packages, *(cls.__module__.split(".")[0] for cls in roots.values())}
    if image_processor is not None and type(image_processor).__module__.split(".")[0] in bundled:
        roots["AutoImageProcessor"] = type(image_processor)
    tokenizer = getattr(processor, "tokenizer", None)
    if tokenizer is not None and type(tokenizer).__module__.split(".")[0] in bundled:
        roots["AutoTokenizer"] = type(tokenizer)

    processor_path = model_dir / "processor_config.json"
    if processor is not None and not processor_path.is_file():
        raise FileNotFoundError(f"{processor_path} not found: save the processor with save_pretrained before bundling")

    collector = _Collector(bundled)
    root_modules = {key: _class_module(cls) for key, cls in roots.items()}
    for module in root_modules.values():
        collector.add(module)
    flat = _flat_names(collector.modules.values())
    exports = {cls.__name__: flat[root_modules[key].name] for key, cls in roots.items()}
    if len(exports) != len(set(roots.values())):
        raise BundleError(
            f"the bundled classes need distinct names: {sorted(cls.__qualname__ for cls in roots.values())}"
        )
    # The file is named after the model's module (the processor's when bundling a processor alone).
    bundle_name = flat[root_modules["AutoModel" if model is not None else "AutoProcessor"].name]
    sources = {
        flat[name]: _rewrite(module, collector.imports[name], flat)
        for name, module in sorted(collector.modules.items())
    }
    origin = ", ".join(sorted({name.split(".")[0] for name in collector.modules}))
    atomic_write_text(model_dir / f"{bundle_name}.py", render_bundle(sources, exports, origin))

    auto_map: dict = {key: f"{bundle_name}.{cls.__name__}" for key, cls in roots.items()}
    if model is not None and zero_shot_class(type(model.config)) is type(model):
        auto_map["AutoModelForZeroShotImageClassification"] = auto_map["AutoModel"]  # the pipeline's Auto class
    if "AutoTokenizer" in auto_map:  # [slow, fast] class references
        from transformers import PreTrainedTokenizerFast

        ref = auto_map["AutoTokenizer"]
        auto_map["AutoTokenizer"] = (
            [None, ref] if issubclass(roots["AutoTokenizer"], PreTrainedTokenizerFast) else [ref, None]
        )
    if model is not None:
        _write_auto_map(config_path, auto_map, auto_map)
    if processor is not None:
        _write_auto_map(
            processor_path, auto_map, ["AutoProcessor"], nested={"image_processor": ["AutoImageProcessor"]}
        )
        for name, keys in (
            ("preprocessor_config.json", ["AutoProcessor", "AutoImageProcessor"]),
            ("tokenizer_config.json", ["AutoProcessor", "AutoTokenizer"]),
        ):
            if (model_dir / name).is_file():
                _write_auto_map(model_dir / name, auto_map, keys)
    return auto_map
