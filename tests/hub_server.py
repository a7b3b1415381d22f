"""Test-side helpers around the package's local Hub (`rs_retrieval.hub.local_hub`): client
subprocesses configured for it (with packages blocked where a test needs a process without them)
and a tiny model package with parent-relative imports for the remote-code tests."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from rs_retrieval.hub.local_hub import LocalHub as FakeHub  # noqa: F401  (the tests' name for it)
from rs_retrieval.hub.local_hub import client_env, git_blob_oid, validate_card_yaml  # noqa: F401

# -- client side: subprocesses configured for the fake hub --------------------------------------

#: Makes the listed top-level packages unimportable (a `trust_remote_code` load must not need them).
BLOCK_IMPORTS = """
import importlib.abc, sys
class _BlockPackages(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"{{name}} is blocked in this process", name=name)
sys.meta_path.insert(0, _BlockPackages())
"""


def run_client(
    script: str, env: dict[str, str], block: tuple[str, ...] = (), cwd: str | Path | None = None, timeout: float = 240
) -> subprocess.CompletedProcess:
    """Run `script` in a fresh Python; with `block`, those packages cannot be imported there."""
    code = (BLOCK_IMPORTS.format(blocked=set(block)) if block else "") + textwrap.dedent(script)
    return subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


# -- a tiny model package with parent-relative imports, for remote-code tests -------------------

TINY_PACKAGE = {
    "tinyhub/__init__.py": '''
        """Tiny retrieval model for the Hub tests; importing it registers it with the Auto classes."""
        from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoProcessor

        from rs_retrieval.models.common.processing import RSImageProcessor

        from .models.tiny.configuration_tiny import TinyHubConfig
        from .models.tiny.modeling_tiny import TinyHubModel
        from .models.tiny.processing_tiny import TinyHubProcessor

        AutoConfig.register(TinyHubConfig.model_type, TinyHubConfig)
        AutoModel.register(TinyHubConfig, TinyHubModel)
        AutoImageProcessor.register(TinyHubConfig, image_processor_classes={"pil": RSImageProcessor})
        AutoProcessor.register(TinyHubConfig, TinyHubProcessor)
    ''',
    "tinyhub/layers/__init__.py": "",
    "tinyhub/layers/utils.py": """
        import torch


        def masked_mean(tokens: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
            if mask is None:
                return tokens.mean(1)
            mask = mask.unsqueeze(-1).to(tokens.dtype)
            return (tokens * mask).sum(1) / mask.sum(1).clamp(min=1)
    """,
    "tinyhub/models/__init__.py": "",
    "tinyhub/models/utils.py": """
        def flatten_patches(maps):
            return maps.flatten(2).transpose(1, 2)
    """,
    "tinyhub/models/tiny/__init__.py": "",
    "tinyhub/models/tiny/configuration_tiny.py": """
        from transformers import PretrainedConfig


        class TinyHubConfig(PretrainedConfig):
            model_type = "tiny_hub_test"

            def __init__(self, embed_dim=8, vocab_size=16, patch=8, **kwargs):
                self.embed_dim = embed_dim
                self.vocab_size = vocab_size
                self.patch = patch
                super().__init__(**kwargs)
    """,
    "tinyhub/models/tiny/modeling_tiny.py": '''
        import torch
        import torch.nn.functional as F
        from torch import nn

        from rs_retrieval.models.common.base import RetrievalPreTrainedModel

        from ...layers import utils as layer_utils
        from ..utils import flatten_patches
        from .configuration_tiny import TinyHubConfig


        class TinyHubModel(RetrievalPreTrainedModel):
            """Pair-dependent score: cosine of pooled embeddings plus the best patch-to-text match."""

            config_class = TinyHubConfig
            image_cache_keys = ("embeds", "patches")

            def __init__(self, config):
                super().__init__(config)
                self.patchify = nn.Conv2d(3, config.embed_dim, config.patch, stride=config.patch)
                self.text_embed = nn.Embedding(config.vocab_size, config.embed_dim)
                self.post_init()

            def encode_images(self, pixel_values, **image_inputs):
                patches = flatten_patches(self.patchify(pixel_values))
                return {"embeds": patches.mean(1), "patches": patches}

            def get_image_features(self, pixel_values, **image_inputs):
                return self.encode_images(pixel_values)["embeds"]

            def get_text_features(self, input_ids, attention_mask=None):
                return layer_utils.masked_mean(self.text_embed(input_ids), attention_mask)

            def score(self, image_cache, text_cache):
                text = F.normalize(text_cache["embeds"], dim=-1)
                patches = F.normalize(image_cache["patches"], dim=-1)
                patch_match = torch.einsum("ipd,td->itp", patches, text).amax(-1)
                return self.similarity(image_cache["embeds"], text_cache["embeds"]) + 0.5 * patch_match
    ''',
    "tinyhub/models/tiny/processing_tiny.py": """
        from rs_retrieval.models.common.processing import RetrievalProcessor


        class TinyHubProcessor(RetrievalProcessor):
            max_text_length = 8
    """,
}
TINY_VOCAB = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    "two",
    "ships",
    "in",
    "a",
    "harbour",
    "green",
    "field",
    "road",
]


def write_tiny_package(root: str | Path) -> Path:
    """Write the `tinyhub` package under `root` (put `root` on sys.path to import it)."""
    root = Path(root)
    for relative, source in TINY_PACKAGE.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source).lstrip("\n"), encoding="utf-8")
    return root


def import_tiny_package(root: str | Path):
    """Write and import `tinyhub` once per process (it registers `tiny_hub_test` with the Auto classes)."""
    if "tinyhub" not in sys.modules:
        sys.path.insert(0, str(write_tiny_package(root)))
    import tinyhub

    return tinyhub


def make_tiny_model(seed: int = 0, image_size: int = 32):
    """A seeded `TinyHubModel` in eval mode and its processor (requires `import_tiny_package` first)."""
    import torch
    from tinyhub import TinyHubConfig, TinyHubModel, TinyHubProcessor
    from transformers import BertTokenizer

    from rs_retrieval.models.common.processing import RSImageProcessor

    torch.manual_seed(seed)
    model = TinyHubModel(TinyHubConfig(vocab_size=len(TINY_VOCAB))).eval()
    tokenizer = BertTokenizer(vocab={word: i for i, word in enumerate(TINY_VOCAB)}, model_max_length=8)
    return model, TinyHubProcessor(image_processor=RSImageProcessor(size=image_size), tokenizer=tokenizer)
