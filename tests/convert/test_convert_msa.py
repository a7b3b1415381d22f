import re

import pytest
import torch
from transformers import AutoModel, AutoProcessor

import rs_retrieval.models  # noqa: F401
from rs_retrieval.convert import CheckpointConversionError, convert_checkpoint
from rs_retrieval.convert.msa import PART_FILES
from rs_retrieval.models.common.towers import resnet_config
from rs_retrieval.models.msa import MSAConfig, MSAModel

IMAGE_HEAD_NAMES = {"proj": "fc", "gate": "att", "out": "fc2"}
MSCMAT_NAMES = {
    "query_proj": "fc",
    "attention": "cross_attn",
    "match_head": "match_fc",
    "query_norm": "ln_pre_t",
    "token_norm": "ln_pre_i",
}
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "ship", "port", "##s", "green", "field"]


def tiny_model() -> MSAModel:
    torch.manual_seed(0)
    text = dict(
        vocab_size=len(VOCAB),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=1,
        intermediate_size=32,
        max_position_embeddings=40,
    )
    vision = resnet_config("resnet50", hidden_sizes=[8, 8, 16, 16], depths=[2, 1, 1, 1], embedding_size=4)
    model = MSAModel(
        MSAConfig(
            text_config=text, vision_config=vision, hidden_size=64, mscmat_heads=1, image_size=32, max_text_len=8
        )
    ).eval()
    for name, buffer in model.named_buffers():  # non-trivial BatchNorm statistics
        if name.endswith(("running_mean", "running_var")):
            buffer.uniform_(0.5, 1.5)
    return model


def torchvision_key(key: str) -> str:
    """Independent inverse of the transformers ResNet naming (test side)."""
    if key.startswith("embedder.embedder."):
        return key.replace("embedder.embedder.convolution", "conv1").replace("embedder.embedder.normalization", "bn1")
    m = re.fullmatch(
        r"encoder\.stages\.(\d)\.layers\.(\d+)\.(layer\.(\d)|shortcut)\.(convolution|normalization)\.(.+)", key
    )
    stage, block, _, k, kind, rest = m.groups()
    if k is None:
        return f"layer{int(stage) + 1}.{block}.downsample.{0 if kind == 'convolution' else 1}.{rest}"
    return f"layer{int(stage) + 1}.{block}.{'conv' if kind == 'convolution' else 'bn'}{int(k) + 1}.{rest}"


def official_parts(model: MSAModel) -> dict[str, dict[str, torch.Tensor]]:
    """The reference modules' state_dicts (`model_retrieval`, `feature_map`, `Bert`, `Multi_img_crossatt`)."""
    state = model.state_dict()
    parts = {part: {} for part in PART_FILES}
    for key, value in state.items():
        head, rest = key.split(".", 1)
        if head == "vision_model":
            parts["img_model"]["feature_extractor." + torchvision_key(rest.removeprefix("resnet."))] = value
        elif head == "scale_proj":
            k, leaf = rest.split(".")
            parts["img_model"][f"fc{int(k) + 1}.{leaf}"] = value
        elif head == "image_head":
            name, leaf = rest.split(".")
            parts["img_map"][f"{IMAGE_HEAD_NAMES[name]}.{leaf}"] = value
        elif head == "text_model":
            parts["text_model"]["bert_model." + rest] = value
        elif rest.startswith(("query_norm.", "token_norm.")):
            sub, leaf = rest.split(".")
            parts["crossatt"][f"{MSCMAT_NAMES[sub]}.{leaf}"] = value
        else:
            sub, k, leaf = rest.split(".", 2)
            parts["crossatt"][f"{MSCMAT_NAMES[sub]}{int(k) + 1}.{leaf}"] = value
    # dead or unused reference tensors the converter must drop
    parts["img_model"].update(
        {
            "norm_layer.weight": torch.ones(1),
            "norm_layer.bias": torch.zeros(1),
            "image_channel_reduce.weight": torch.randn(1, 960, 1, 1),
            "image_patch_proj.weight": torch.randn(768, 1, 7, 7),
            "feature_extractor.fc.weight": torch.randn(7, 16),
            "feature_extractor.fc.bias": torch.randn(7),
        }
    )
    parts["text_model"].update(
        {
            "bert_model.pooler.dense.weight": torch.randn(64, 64),
            "bert_model.pooler.dense.bias": torch.randn(64),
            "bert_model.embeddings.position_ids": torch.arange(40)[None],
        }
    )
    parts["crossatt"].update({"ln_post.weight": torch.ones(64), "ln_post.bias": torch.zeros(64)})
    return parts


def write_folder(directory, parts, skip=()):
    directory.mkdir()
    for part, name in PART_FILES.items():
        if part not in skip:
            torch.save(parts[part], directory / name)
    return directory


@pytest.fixture
def vocab_file(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(VOCAB) + "\n")
    return path


def test_folder_of_reference_files_converts_exactly(tmp_path, vocab_file):
    model = tiny_model()
    folder = write_folder(tmp_path / "official", official_parts(model))
    out = convert_checkpoint(
        folder,
        "msa",
        vocab_path=vocab_file,
        out_dir=tmp_path / "hf",
        config_overrides={"image_size": 32, "max_text_len": 8},
    )
    loaded = AutoModel.from_pretrained(out).eval()
    assert (
        type(loaded) is MSAModel
        and loaded.config.mscmat_heads == 1
        and loaded.config.vision_config.depths == [2, 1, 1, 1]
    )
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    processor = AutoProcessor.from_pretrained(out)
    assert processor.max_text_length == 8
    inputs = processor(text=["a ship port", "green fields"])
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(pixels, **inputs).logits_per_image, model(pixels, **inputs).logits_per_image, rtol=0, atol=0
        )


def test_single_combined_file_and_missing_crossatt(tmp_path, vocab_file):
    model = tiny_model()
    parts = official_parts(model)
    combined = {
        f"{part}.{key}": value for part, state in parts.items() if part != "crossatt" for key, value in state.items()
    }
    torch.save(combined, tmp_path / "msa.pth")
    with pytest.warns(UserWarning, match="MSCMAT"):
        out = convert_checkpoint(
            tmp_path / "msa.pth",
            "msa",
            vocab_path=vocab_file,
            out_dir=tmp_path / "hf",
            config_overrides={"image_size": 32},
        )
    loaded = AutoModel.from_pretrained(out)
    for key, value in model.state_dict().items():
        if not key.startswith("mscmat."):
            assert torch.equal(loaded.state_dict()[key], value), key


def test_mismatches_are_refused_with_the_offending_keys(tmp_path, vocab_file):
    parts = official_parts(tiny_model())
    extra = {**parts, "img_map": {**parts["img_map"], "att2.weight": torch.randn(64, 64)}}
    with pytest.raises(CheckpointConversionError, match="img_map.att2.weight"):
        convert_checkpoint(
            write_folder(tmp_path / "extra", extra), "msa", vocab_path=vocab_file, out_dir=tmp_path / "a"
        )
    missing = {**parts, "crossatt": {k: v for k, v in parts["crossatt"].items() if not k.startswith("match_fc2")}}
    with pytest.raises(CheckpointConversionError, match="mscmat.match_head.1.weight"):
        convert_checkpoint(
            write_folder(tmp_path / "missing", missing), "msa", vocab_path=vocab_file, out_dir=tmp_path / "b"
        )
    wrong = {**parts, "img_model": {**parts["img_model"], "fc3.weight": torch.randn(64, 8)}}
    with pytest.raises(CheckpointConversionError, match="scale_proj.2.weight"):
        convert_checkpoint(
            write_folder(tmp_path / "wrong", wrong), "msa", vocab_path=vocab_file, out_dir=tmp_path / "c"
        )
    with pytest.raises(FileNotFoundError, match="best_img_map.pth"):
        convert_checkpoint(
            write_folder(tmp_path / "partial", parts, skip=("img_map",)),
            "msa",
            vocab_path=vocab_file,
            out_dir=tmp_path / "d",
        )
    small_vocab = tmp_path / "small.txt"
    small_vocab.write_text("\n".join(VOCAB[:6]) + "\n")
    with pytest.raises(CheckpointConversionError, match="6 tokens"):
        convert_checkpoint(
            write_folder(tmp_path / "ok", parts),
            "msa",
            vocab_path=small_vocab,
            out_dir=tmp_path / "e",
            config_overrides={"image_size": 32},
        )
    assert not (tmp_path / "e").exists()
