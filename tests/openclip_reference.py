"""Reference outputs from open_clip, run in the separate test-only venv (`.venv-openclip`).

Usage: python openclip_reference.py SPEC.json OUT_DIR
SPEC: {"archs": {name: open_clip model config | "ViT-B-32"}, "captions_file": path or null,
       "image_sizes": [[w, h], ...], "captions": [...], "checkpoint_format": {name: "bare" | "training" |
       "safetensors"}}

Per architecture, writes OUT_DIR/<name>/: the checkpoint as its release format, `model_config.json`,
`reference.pt` with the pixel inputs open_clip's validation transform makes from the images in
OUT_DIR/images/, open_clip's token ids, image/text embeddings and logit_scale. With a captions
file, OUT_DIR/caption_ids.pt holds open_clip's token ids of every caption.
"""

import json
import sys
from pathlib import Path

import numpy as np
import open_clip
import torch
from PIL import Image


def perturb(model: torch.nn.Module, seed: int) -> None:
    """Random LayerNorm weights and biases everywhere, so a wrong mapping cannot hide behind 1/0 init."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "ln" in name or name.endswith("bias"):
                param.add_(0.1 * torch.randn(param.shape, generator=generator))
        model.logit_scale.fill_(2.3)


def main(spec_path: str, out_dir: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    images = []
    for i, (width, height) in enumerate(spec["image_sizes"]):
        image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        image.save(out / "images" / f"{i}.png")
        images.append(image)
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    if spec.get("captions_file"):
        captions = [line.rstrip("\n") for line in Path(spec["captions_file"]).read_text(encoding="utf-8").splitlines()]
        torch.save({"captions": captions, "ids": tokenizer(captions)}, out / "caption_ids.pt")
    for index, (name, arch) in enumerate(spec["archs"].items()):
        folder = out / name
        folder.mkdir()
        torch.manual_seed(index)
        if isinstance(arch, str):
            model = open_clip.create_model(arch, pretrained=None)
            config = open_clip.get_model_config(arch)
        else:
            config = arch
            model = open_clip.CLIP(**arch)
        model.eval()
        perturb(model, index)
        (folder / "model_config.json").write_text(json.dumps(config))
        state = model.state_dict()
        kind = spec.get("checkpoint_format", {}).get(name, "bare")
        if kind == "training":  # SkyCLIP: open_clip training checkpoint of a DDP model
            torch.save(
                {
                    "epoch": 20,
                    "name": name,
                    "state_dict": {f"module.{k}": v for k, v in state.items()},
                    "optimizer": {"state": {}, "param_groups": []},
                },
                folder / "epoch_20.pt",
            )
        elif kind == "safetensors":
            from safetensors.torch import save_file

            save_file({k: v.contiguous() for k, v in state.items()}, folder / "open_clip_model.safetensors")
            (folder / "open_clip_config.json").write_text(
                json.dumps({"model_cfg": config, "preprocess_cfg": {"mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3]}})
            )
        else:
            torch.save(state, folder / "checkpoint.pt")
        image_size = (
            model.visual.image_size[0] if isinstance(model.visual.image_size, tuple) else model.visual.image_size
        )
        mean, std = ((0.5, 0.4, 0.3), (0.2, 0.25, 0.3)) if kind == "safetensors" else (None, None)
        preprocess = open_clip.image_transform(image_size, is_train=False, mean=mean, std=std)
        pixels = torch.stack([preprocess(image) for image in images])
        ids = tokenizer(spec["captions"])
        with torch.no_grad():
            torch.save(
                {
                    "pixel_values": pixels,
                    "input_ids": ids,
                    "image_embeds": model.encode_image(pixels),
                    "text_embeds": model.encode_text(ids),
                    "logit_scale": model.logit_scale.detach().clone(),
                    "num_keys": len(state),
                },
                folder / "reference.pt",
            )


if __name__ == "__main__":
    main(*sys.argv[1:])
