"""Package attributes that live in submodules and are imported on first use (PEP 562).

The command line (`rs_retrieval.cli`) imports submodules of the areas, which runs
`rs_retrieval/<area>/__init__.py` first: re-exporting the trainer or the evaluator there eagerly
would load torch for `--help`.
"""

import importlib
import sys


def lazy_exports(package: str, exports: dict[str, list[str]]):
    """`__getattr__` and `__dir__` for `package`: {submodule (relative, e.g. ".trainer"): [names]}."""
    where = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str):
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where[name], package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(where))

    return __getattr__, __dir__
