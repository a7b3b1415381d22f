"""Optional engines (faiss, rasterio, gradio, onnx, ...) are imported on first use.

`require("faiss", extra="index")` returns the module or raises `MissingExtraError` naming the
`pip install 'rs-retrieval[extra]'` line, so a command that needs an engine says what to install
instead of failing with a bare `ModuleNotFoundError`.
"""

import importlib
from types import ModuleType

from .errors import MissingExtraError


def require(module: str, extra: str, purpose: str | None = None) -> ModuleType:
    """Import `module`, or explain which extra installs it (and, optionally, what it is needed for)."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        needed_for = f" for {purpose}" if purpose else ""
        raise MissingExtraError(
            f"'{module}' is needed{needed_for} but is not installed: pip install 'rs-retrieval[{extra}]'"
        ) from error
