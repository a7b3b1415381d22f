"""Pixel values a converted CLIP folder gives, loaded every way a user loads it, in THIS interpreter
(run by tests/models/clip/test_clip_conversion.py both in the test venv, which has no torchvision,
and in `.venv-openclip`, which has it, so transformers picks its torchvision backend by default).

Usage: python clip_processor_pixels.py FOLDER IMAGES_DIR N_IMAGES SRC_DIR OUT.pt
Plain transformers loads run before rs_retrieval can be imported; then the package's own loader
(from SRC_DIR) runs.
"""

import sys

import torch
from PIL import Image


def main(folder: str, images_dir: str, count: str, src: str, out: str) -> None:
    images = [Image.open(f"{images_dir}/{i}.png").convert("RGB") for i in range(int(count))]
    sys.modules["rs_retrieval"] = None  # importing it would raise: the plain loads stay plain
    from transformers import AutoProcessor, CLIPProcessor

    results, backends = {}, {}
    for name, cls, kwargs in (
        ("plain_default", CLIPProcessor, {}),
        ("clip_processor_pil", CLIPProcessor, {"backend": "pil"}),
        ("auto_processor_pil", AutoProcessor, {"backend": "pil"}),
    ):
        processor = cls.from_pretrained(folder, **kwargs)
        backends[name] = processor.image_processor.backend
        results[name] = processor(images=images, return_tensors="pt")["pixel_values"]
    del sys.modules["rs_retrieval"]
    sys.path.insert(0, src)
    from rs_retrieval.models import load_retrieval_processor

    processor = load_retrieval_processor(folder)
    backends["ours"] = processor.image_processor.backend
    results["ours"] = processor.image_inputs({"image": images})["pixel_values"]
    torch.save({"pixels": results, "backends": backends}, out)


if __name__ == "__main__":
    main(*sys.argv[1:])
