"""Time encoding an RSITMD-size test set (452 images of 256 x 256 px, 2,260 captions) with a
ViT-B-32-shaped CLIP (random weights: the time does not depend on them) through the package's
evaluator (`encode_dataset`): preprocessing, both towers, batching as `rs-retrieval evaluate` does.

Usage: python scripts/benchmark_clip_encode.py [--captions RSITMD/test_caps.txt] [--batch-size 64] [--threads N]
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from datasets import Image as ImageFeature
from PIL import Image

from rs_retrieval.convert.openclip import clip_config_from_open_clip, resolve_architecture
from rs_retrieval.evaluation.evaluator import encode_dataset
from rs_retrieval.models.clip import CLIPRetrievalModel, DualEncoderProcessor, build_clip_processor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--captions", help="a caption file, one per line (default: numbered placeholder captions)")
    parser.add_argument("--images", type=int, default=452)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--arch", default="ViT-B-32")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    captions = (
        Path(args.captions).read_text(encoding="utf-8").splitlines()
        if args.captions and Path(args.captions).is_file()
        else []
    )
    captions = (captions or [f"caption number {i} of a remote sensing image" for i in range(5 * args.images)])[
        : 5 * args.images
    ]
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)) for _ in range(args.images)]
    dataset = Dataset.from_dict(
        {"image": images, "captions": [captions[5 * i : 5 * i + 5] for i in range(args.images)]}
    ).cast_column("image", ImageFeature())
    torch.manual_seed(0)
    model = CLIPRetrievalModel(clip_config_from_open_clip(resolve_architecture(args.arch), "quick_gelu")).eval()
    processor = DualEncoderProcessor(build_clip_processor(model.config.vision_config.image_size))
    encode_dataset(model, processor, dataset.select(range(8)), batch_size=8, progress=False)  # warm-up
    start = time.perf_counter()
    image_cache, text_cache, _, texts = encode_dataset(
        model, processor, dataset, batch_size=args.batch_size, progress=False
    )
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "arch": args.arch,
                "images": len(image_cache["embeds"]),
                "captions": len(texts),
                "batch_size": args.batch_size,
                "torch_threads": torch.get_num_threads(),
                "seconds": round(seconds, 1),
                "images_and_captions_per_s": round((len(image_cache["embeds"]) + len(texts)) / seconds, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
