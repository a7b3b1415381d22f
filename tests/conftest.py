"""Test-wide settings: never touch the network, keep HF caches inside a temporary folder."""

import os
import tempfile

# Set before any Hugging Face library is imported: they read these at import time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="rs_retrieval_hf_home_"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


import pytest


@pytest.fixture
def one_thread():
    """Tiny models train fastest single-threaded, and the test machine is shared."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def dists(tmp_path_factory):
    """The sdist and wheel of this checkout, built once per session (tests/dists.py)."""
    from dists import build_dists

    return build_dists(tmp_path_factory.mktemp("dist"))
