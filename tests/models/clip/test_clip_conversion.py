"""open_clip -> transformers CLIPModel: parity with open_clip itself (run in the test-only venv
`.venv-openclip`), release formats, tokenizer ids on every RSITMD test caption, image
preprocessing, a fresh process that cannot import rs_retrieval, refusals and the card."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from rs_retrieval.convert import convert_checkpoint
from rs_retrieval.convert.clip_zoo import find_release
from rs_retrieval.convert.common import CheckpointConversionError
from rs_retrieval.convert.openclip import (
    UnsupportedArchitectureError,
    convert_open_clip,
    read_open_clip_checkpoint,
    resolve_architecture,
)
from rs_retrieval.models import load_retrieval_model, load_retrieval_processor

REPO = Path(__file__).resolve().parents[3]
OPENCLIP_PYTHON = Path(os.environ.get("RS_OPENCLIP_PYTHON", REPO / ".venv-openclip" / "bin" / "python"))
RSITMD_CAPTIONS = Path(os.environ.get("RS_RSITMD_TEST_CAPS", "/work/shared/data/rsitmd/test_caps.txt"))
CAPTIONS = [
    "a satellite image of an airport.",
    "Many   buildings and  green trees are around a playground .",
    "two white planes are parked beside a grey runway",
    "x",
]
IMAGE_SIZES = [[50, 40], [32, 32], [64, 20], [45, 90]]  # resize excess even: see processing_clip
TOLERANCE = 1e-5


def tiny(width=64, head_width=32, quick_gelu=None, text_width=64, text_heads=2):
    cfg = {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": width, "head_width": head_width, "patch_size": 8},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": text_width, "heads": text_heads, "layers": 2},
    }
    if quick_gelu is not None:
        cfg["quick_gelu"] = quick_gelu
    return cfg


#: name -> (open_clip config, release format, activation to convert with (None: from the config)).
ARCHS = {
    "tiny_quickgelu": (tiny(quick_gelu=True), "bare", "quick_gelu"),
    "tiny_gelu_skyclip_format": (tiny(), "training", None),
    "tiny_head_width_80": (tiny(width=160, head_width=80, text_width=96, text_heads=3), "safetensors", None),
}


def openclip_reference(out: Path, archs: dict, captions_file: Path | None = None, timeout: int = 900) -> Path:
    if not OPENCLIP_PYTHON.is_file():
        pytest.skip(f"open_clip parity needs the test-only venv {OPENCLIP_PYTHON} (created by .ci/run; see README)")
    spec = {
        "archs": archs,
        "captions": CAPTIONS,
        "image_sizes": IMAGE_SIZES,
        "captions_file": str(captions_file) if captions_file else None,
        "checkpoint_format": {name: fmt for name, (_, fmt, _) in ARCHS.items()},
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "spec.json").write_text(json.dumps(spec))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    subprocess.run(
        [str(OPENCLIP_PYTHON), str(REPO / "tests" / "openclip_reference.py"), str(out / "spec.json"), str(out)],
        check=True,
        env=env,
        timeout=timeout,
    )
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    captions = RSITMD_CAPTIONS if RSITMD_CAPTIONS.is_file() else None
    return openclip_reference(
        tmp_path_factory.mktemp("openclip"), {name: cfg for name, (cfg, _, _) in ARCHS.items()}, captions
    )


def checkpoint_of(folder: Path) -> Path:
    for name in ("checkpoint.pt", "epoch_20.pt"):
        if (folder / name).is_file():
            return folder / name
    return folder  # an open_clip repository folder (open_clip_config.json + safetensors)


def convert(reference: Path, name: str, out: Path, hidden_act="default") -> Path:
    _, fmt, act = ARCHS[name]
    folder = reference / name
    arch = None if fmt == "safetensors" else folder / "model_config.json"
    return Path(
        convert_open_clip(
            checkpoint_of(folder), out, arch=arch, hidden_act=act if hidden_act == "default" else hidden_act
        )
    )


def images(reference: Path) -> list[Image.Image]:
    return [Image.open(reference / "images" / f"{i}.png").convert("RGB") for i in range(len(IMAGE_SIZES))]


def max_differences(model, processor, reference: Path, name: str) -> dict[str, float]:
    expected = torch.load(reference / name / "reference.pt")
    pixels = processor.image_inputs({"image": images(reference)})["pixel_values"]
    texts = processor.text_inputs(CAPTIONS)
    with torch.no_grad():
        image_embeds = model.encode_images(expected["pixel_values"])["embeds"]
        text_embeds = model.encode_texts(**texts)["embeds"]
    return {
        "pixels": float((pixels - expected["pixel_values"]).abs().max()),
        "image": float((image_embeds - expected["image_embeds"]).abs().max()),
        "text": float((text_embeds - expected["text_embeds"]).abs().max()),
        "logit_scale": float((model.logit_scale.detach() - expected["logit_scale"]).abs()),
    }


@pytest.mark.parametrize("name", list(ARCHS))
def test_converted_model_matches_open_clip(reference, tmp_path, name):
    out = convert(reference, name, tmp_path / "hf")
    model, processor = load_retrieval_model(out).eval(), load_retrieval_processor(out)
    differences = max_differences(model, processor, reference, name)
    print(f"\n{name}: max |difference| vs open_clip {differences}")
    assert differences["pixels"] == 0.0
    assert (
        differences["image"] <= TOLERANCE
        and differences["text"] <= TOLERANCE
        and differences["logit_scale"] <= TOLERANCE
    )
    record = json.loads((out / "conversion.json").read_text())
    assert record["source_keys"] == torch.load(reference / name / "reference.pt")["num_keys"]
    assert record["hidden_act"] == model.config.text_config.hidden_act == model.config.vision_config.hidden_act


def test_wrong_activation_is_visible_to_the_parity_check(reference, tmp_path):
    out = convert(reference, "tiny_quickgelu", tmp_path / "hf", hidden_act="gelu")
    differences = max_differences(
        load_retrieval_model(out).eval(), load_retrieval_processor(out), reference, "tiny_quickgelu"
    )
    assert differences["image"] > 10 * TOLERANCE and differences["text"] > 10 * TOLERANCE


def test_folder_loads_with_plain_transformers_without_rs_retrieval(reference, tmp_path):
    out = out_dir = convert(reference, "tiny_head_width_80", tmp_path / "hf")
    script = f"""
import json, sys
sys.modules["rs_retrieval"] = None  # importing it would raise
import torch
from PIL import Image
from transformers import AutoProcessor, CLIPModel, CLIPProcessor
model = CLIPModel.from_pretrained({str(out)!r}).eval()
processor = CLIPProcessor.from_pretrained({str(out)!r})
images = [Image.open({str(reference / "images")!r} + f"/{{i}}.png").convert("RGB") for i in range({len(IMAGE_SIZES)})]
inputs = processor(text={CAPTIONS!r}, images=images, return_tensors="pt", padding=True)
with torch.no_grad():
    out = model(**inputs)
pixels = [inputs["pixel_values"].tolist()]
for other in (AutoProcessor.from_pretrained({str(out_dir)!r}), CLIPProcessor.from_pretrained({str(out_dir)!r}, backend="pil")):
    pixels.append(other(images=images, return_tensors="pt")["pixel_values"].tolist())
print(json.dumps({{"type": type(model).__name__, "image": out.image_embeds.tolist(), "text": out.text_embeds.tolist(), "pixels": pixels}}))
"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300, check=True
    )
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    expected = torch.load(reference / "tiny_head_width_80" / "reference.pt")
    normalise = torch.nn.functional.normalize
    assert loaded["type"] == "CLIPModel"
    for pixels in loaded["pixels"]:  # CLIPProcessor, AutoProcessor, CLIPProcessor(backend="pil")
        assert torch.equal(torch.tensor(pixels), expected["pixel_values"])
    assert torch.allclose(torch.tensor(loaded["image"]), normalise(expected["image_embeds"], dim=-1), atol=TOLERANCE)
    assert torch.allclose(torch.tensor(loaded["text"]), normalise(expected["text_embeds"], dim=-1), atol=TOLERANCE)


def processor_pixels(python: Path, folder: Path, reference: Path, out: Path) -> dict:
    """Pixels of `folder` loaded the plain ways and ours, computed by `python` (see clip_processor_pixels.py)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    script = REPO / "tests" / "clip_processor_pixels.py"
    args = [
        str(python),
        str(script),
        str(folder),
        str(reference / "images"),
        str(len(IMAGE_SIZES)),
        str(REPO / "src"),
        str(out),
    ]
    subprocess.run(args, check=True, env=env, cwd=out.parent, timeout=300)
    return torch.load(out)


def test_every_load_gives_open_clip_pixels_where_torchvision_is_installed(reference, tmp_path):
    """transformers picks its torchvision image-processor backend wherever torchvision is installed
    (one grey level off open_clip's PIL resize): our loader swaps it for the PIL twin, and the card
    tells plain users to pass backend="pil". (Without torchvision: the two tests above.)"""
    probe = subprocess.run([str(OPENCLIP_PYTHON), "-c", "import transformers, torchvision"], capture_output=True)
    if probe.returncode:
        pytest.skip(
            f"{OPENCLIP_PYTHON} lacks transformers or torchvision "
            f"(.ci/run installs them): {probe.stderr.decode()[-200:]}"
        )
    name = "tiny_head_width_80"  # non-default mean/std: the PIL twin must keep them
    out = convert(reference, name, tmp_path / "hf")
    assert f'CLIPProcessor.from_pretrained("{out}", backend="pil")' in (out / "README.md").read_text()
    measured = processor_pixels(OPENCLIP_PYTHON, out, reference, tmp_path / "pixels.pt")
    expected = torch.load(reference / name / "reference.pt")
    model = load_retrieval_model(out).eval()
    assert measured["backends"] == {
        "plain_default": "torchvision",
        "clip_processor_pil": "pil",
        "auto_processor_pil": "pil",
        "ours": "pil",
    }
    for way, pixels in measured["pixels"].items():
        difference = float((pixels - expected["pixel_values"]).abs().max())
        print(f"with torchvision, {way}: max |pixel difference| vs open_clip {difference:.3g}")
        if way == "plain_default":
            assert difference > 0  # the documented drift (docs/inputs.md); if this fails, update the docs
            continue
        assert difference == 0.0, way
        with torch.no_grad():
            features = model.encode_images(pixels)["embeds"]
        assert float((features - expected["image_embeds"]).abs().max()) <= TOLERANCE, way


def test_token_ids_match_open_clip_on_every_rsitmd_test_caption(reference):
    if not (reference / "caption_ids.pt").is_file():
        pytest.skip(f"RSITMD test captions not found at {RSITMD_CAPTIONS} (set RS_RSITMD_TEST_CAPS)")
    from rs_retrieval.models.clip import build_clip_tokenizer

    expected = torch.load(reference / "caption_ids.pt")
    captions, open_clip_ids = expected["captions"], expected["ids"]
    assert len(captions) == 2260
    encoded = build_clip_tokenizer()(
        captions, padding="max_length", truncation=True, max_length=77, return_tensors="pt"
    )
    mask = encoded["attention_mask"].bool()
    assert torch.equal(encoded["input_ids"][mask], open_clip_ids[mask])
    assert (open_clip_ids[~mask] == 0).all()  # open_clip pads with 0, transformers with <|endoftext|> + attention mask


def test_release_formats_and_cli(reference, tmp_path):
    from rs_retrieval.cli import main

    source = reference / "tiny_gelu_skyclip_format"
    state = read_open_clip_checkpoint(source / "epoch_20.pt")
    assert not any(key.startswith("module.") for key in state) and "visual.proj" in state
    assert (
        main(
            [
                "convert",
                "--method",
                "openclip",
                "--checkpoint",
                str(source / "epoch_20.pt"),
                "--arch",
                str(source / "model_config.json"),
                "--out",
                str(tmp_path / "cli"),
            ]
        )
        == 0
    )
    config = json.loads((tmp_path / "cli" / "config.json").read_text())
    assert (
        config["model_type"] == "clip"
        and config["architectures"] == ["CLIPModel"]
        and config["text_config"]["hidden_act"] == "gelu"
    )
    card = (tmp_path / "cli" / "README.md").read_text()
    assert (
        "CLIPModel.from_pretrained" in card
        and json.loads((tmp_path / "cli" / "conversion.json").read_text())["source_sha256"] in card
    )
    assert (
        main(
            [
                "convert",
                "--method",
                "msa",
                "--checkpoint",
                str(source / "epoch_20.pt"),
                "--arch",
                "ViT-B-32",
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )


def test_known_architectures_build_the_spec_configs():
    from rs_retrieval.convert.openclip import clip_config_from_open_clip

    h14 = clip_config_from_open_clip(resolve_architecture("ViT-H-14"), "gelu")
    assert (
        h14.projection_dim,
        h14.vision_config.num_attention_heads,
        h14.vision_config.hidden_size,
        h14.text_config.num_hidden_layers,
    ) == (1024, 16, 1280, 24)
    l336 = clip_config_from_open_clip(resolve_architecture("ViT-L-14-336"), "quick_gelu")
    assert (l336.vision_config.image_size, l336.vision_config.patch_size, l336.text_config.hidden_size) == (
        336,
        14,
        768,
    )
    assert resolve_architecture("ViT-B-32-quickgelu")["quick_gelu"] is True
    # Parameter counts of the open_clip architectures, from the config alone.
    from transformers import CLIPModel

    with torch.device("meta"):
        b32 = CLIPModel(clip_config_from_open_clip(resolve_architecture("ViT-B-32"), "quick_gelu"))
    assert round(sum(p.numel() for p in b32.parameters()) / 1e6, 2) == 151.28
    assert len(b32.state_dict()) == 398


def test_refusals_are_typed_and_clear(tmp_path):
    with pytest.raises(UnsupportedArchitectureError, match="ResNet"):
        resolve_architecture("RN50")
    rn50 = tmp_path / "RemoteCLIP-RN50.pt"
    torch.save({"visual.attnpool.c_proj.weight": torch.zeros(2, 2), "logit_scale": torch.tensor(1.0)}, rn50)
    with pytest.raises(UnsupportedArchitectureError, match="no transformers"):
        convert_open_clip(rn50, tmp_path / "out", arch="ViT-B-32")
    with pytest.raises(UnsupportedArchitectureError, match="attentional_pool"):
        resolve_architecture({"embed_dim": 8, "vision_cfg": {"attentional_pool": True}, "text_cfg": {}})
    with pytest.raises(CheckpointConversionError, match="unknown architecture"):
        resolve_architecture("ViT-Z-99")
    bad = tmp_path / "bad.pt"
    torch.save({"visual.conv1.weight": torch.zeros(64, 3, 8, 8), "surprise.weight": torch.zeros(1)}, bad)
    with pytest.raises(CheckpointConversionError, match="surprise.weight"):
        convert_open_clip(bad, tmp_path / "out", arch=tiny())
    with pytest.raises(CheckpointConversionError, match="pass arch"):
        convert_open_clip(bad, tmp_path / "out")
    torch.save([1, 2], bad)
    with pytest.raises(CheckpointConversionError, match="state dict"):
        read_open_clip_checkpoint(bad)


def test_missing_keys_are_named(tmp_path):
    path = tmp_path / "partial.pt"
    torch.save({"logit_scale": torch.tensor(1.0), "visual.proj": torch.zeros(64, 32)}, path)
    with pytest.raises(CheckpointConversionError, match="missing key"):
        convert_open_clip(path, tmp_path / "out", arch=tiny())


def test_release_is_found_from_the_published_file_names():
    assert find_release(None, "/x/RemoteCLIP-ViT-B-32.pt").id == "remoteclip-vit-b-32"
    assert find_release(None, "ckpt/RS5M_ViT-B-32_RET-2.pt").id == "georsclip-vit-b-32-ret2"
    assert find_release(None, "ckpt/RS5M_ViT-B-32.pt").id == "georsclip-vit-b-32"
    assert find_release(None, "SkyCLIP_ViT_B32_top50pct/epoch_20.pt").hidden_act == "gelu"
    assert find_release(None, "RS5M_ViT-H-14.pt").hidden_act == "gelu"
    assert find_release(None, "my_model.pt") is None
    with pytest.raises(CheckpointConversionError, match="unknown release"):
        find_release("nope")


def test_convert_checkpoint_dispatches_openclip(reference, tmp_path):
    source = reference / "tiny_quickgelu"
    out = convert_checkpoint(
        source / "checkpoint.pt",
        "openclip",
        out_dir=tmp_path / "hf",
        arch=str(source / "model_config.json"),
        hidden_act="quick_gelu",
    )
    assert json.loads((Path(out) / "config.json").read_text())["vision_config"]["hidden_act"] == "quick_gelu"
    with pytest.raises(FileExistsError):
        convert_checkpoint(source / "checkpoint.pt", "openclip", out_dir=out, arch=str(source / "model_config.json"))


RELEASE_LOAD = """
import json, torch
from PIL import Image
from transformers import CLIPModel, CLIPProcessor
model = CLIPModel.from_pretrained("org/remoteclip-vit-b-32").eval()
processor = CLIPProcessor.from_pretrained("org/remoteclip-vit-b-32")
images = [Image.open({images!r} + f"/{{i}}.png").convert("RGB") for i in range({n})]
with torch.no_grad():
    out = model(**processor(text={captions!r}, images=images, return_tensors="pt", padding=True))
print(json.dumps({{"type": type(model).__name__, "image": out.image_embeds.tolist()}}))
"""


def test_release_card_validates_pushes_and_loads_without_rs_retrieval(reference, tmp_path):
    """A converted RemoteCLIP release goes to the test Hub (which validates its card as the Hub does)
    and comes back as a plain CLIPModel in a process that cannot import rs_retrieval."""
    from hub_server import FakeHub, client_env, run_client, validate_card_yaml
    from huggingface_hub import ModelCard

    from rs_retrieval.cards import CardError, render_model_card

    source = reference / "tiny_quickgelu"
    release_file = tmp_path / "RemoteCLIP-ViT-B-32.pt"
    release_file.write_bytes((source / "checkpoint.pt").read_bytes())
    out = Path(convert_open_clip(release_file, tmp_path / "hf", arch=source / "model_config.json"))
    record = json.loads((out / "conversion.json").read_text())
    assert (
        record["release"] == "remoteclip-vit-b-32"
        and record["hidden_act"] == "quick_gelu"
        and record["hidden_act_source"].startswith("documented")
    )
    card = (out / "README.md").read_text()
    for expected in (
        "49.38",
        "35.26",
        "77.96",
        "Acceptance check",
        "pipeline_tag: zero-shot-image-classification",
        record["source_sha256"],
        "license: apache-2.0",
        "github.com/ChenDelong1999/RemoteCLIP, is Apache-2.0",
        "carries no licence tag",
    ):
        assert expected in card, expected
    assert validate_card_yaml(card) == [] and ModelCard(card).data.license == "apache-2.0"
    # GeoRSCLIP: the weights' card licence (unnamed CC variant) is `other`, named and linked; the code's MIT is said apart
    record["release"] = "georsclip-vit-b-32"
    (out / "conversion.json").write_text(json.dumps(record))
    geo = render_model_card(out)
    meta = ModelCard(geo).data
    assert (meta.license, meta.license_name, meta.license_link) == (
        "other",
        "georsclip-weights-cc-unspecified",
        "https://huggingface.co/Zilun/GeoRSCLIP",
    )
    assert validate_card_yaml(geo) == [] and "om-ai-lab/RS5M is MIT, which covers its code, not the weights" in geo
    assert ModelCard(render_model_card(out, license="mit")).data.license == "mit"  # --license is honoured
    with pytest.raises(CardError, match="needs a licence name"):
        render_model_card(out, license="other")
    record["release"] = "remoteclip-vit-b-32"
    (out / "conversion.json").write_text(json.dumps(record))

    with FakeHub() as hub:
        env = client_env(hub.endpoint, tmp_path / "hf_home")
        # each of these failed on a card with `license: other` and no name; one process runs all three
        push = "from rs_retrieval.cli import main\nfor args in (['--no-card'], ['--license', 'mit'], []):\n"
        push += f"    assert main(['push', {str(out)!r}, 'org/remoteclip-vit-b-32', *args]) == 0, args\n"
        pushed = run_client(push, env)
        assert pushed.returncode == 0 and pushed.stdout.count("pushed model") == 3, pushed.stderr[-3000:]
        assert len(hub.repo("org/remoteclip-vit-b-32").commits) == 4  # initial + three pushes
        files = set(hub.repo("org/remoteclip-vit-b-32").resolve("main").files)
        assert (
            not any(name.endswith(".py") for name in files)
            and {"README.md", "conversion.json", "model.safetensors", "processor_config.json"} <= files
        )
        pushed_card = hub.file_bytes("org/remoteclip-vit-b-32", "README.md").decode()
        assert (
            "license: apache-2.0" in pushed_card
            and 'CLIPModel.from_pretrained("org/remoteclip-vit-b-32")' in pushed_card
        )
        config = json.loads(hub.file_bytes("org/remoteclip-vit-b-32", "config.json"))
        assert "auto_map" not in config
        script = RELEASE_LOAD.format(images=str(reference / "images"), n=len(IMAGE_SIZES), captions=CAPTIONS)
        loaded = run_client(script, {k: v for k, v in env.items() if k != "PYTHONPATH"}, block=("rs_retrieval",))
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    result = json.loads(loaded.stdout.strip().splitlines()[-1])
    expected = torch.load(source / "reference.pt")
    assert result["type"] == "CLIPModel"
    assert torch.allclose(
        torch.tensor(result["image"]), torch.nn.functional.normalize(expected["image_embeds"], dim=-1), atol=TOLERANCE
    )


@pytest.mark.slow
@pytest.mark.parametrize("arch, hidden_act", [("ViT-B-32", "gelu"), ("ViT-B-32-quickgelu", "quick_gelu")])
def test_real_vit_b_32_shape_matches_open_clip(tmp_path, arch, hidden_act):
    reference = openclip_reference(tmp_path / "ref", {"vit": arch})
    out = Path(convert_open_clip(reference / "vit" / "checkpoint.pt", tmp_path / "hf", arch=arch))
    model, processor = load_retrieval_model(out).eval(), load_retrieval_processor(out)
    assert model.config.vision_config.hidden_act == hidden_act
    assert json.loads((out / "conversion.json").read_text())["source_keys"] == 302
    differences = max_differences(model, processor, reference, "vit")
    print(f"\n{arch}: max |difference| vs open_clip {differences}")
    assert (
        differences["image"] <= TOLERANCE
        and differences["text"] <= TOLERANCE
        and differences["logit_scale"] <= TOLERANCE
    )
