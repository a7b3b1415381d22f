"""CLIP tokenizer and image processor built offline, and the processor adapter of the contract.

The tokenizer is transformers' `CLIPTokenizer` built from the CLIP BPE merges file that OpenAI CLIP and open_clip ship
(`resources/clip_bpe_simple_vocab_16e6.txt.gz`, MIT licence, MD5 933b7abbbbde62c36f02f0e6ccde464f): ids 0-255 are the
byte symbols, 256-511 the same with `</w>`, then one id per merge (the first 48,894), then `<|startoftext|>` and
`<|endoftext|>` (open_clip's `SimpleTokenizer`; docs/clip-zeroshot.md). The image processor is the PIL-backed
`CLIPImageProcessorPil`, which reproduces open_clip's validation transform exactly for square images and whenever the
resized long side exceeds the crop by an even number of pixels; otherwise transformers' centre crop starts one pixel
earlier than torchvision's (floor versus round of half the excess).

transformers (5.x) loads a saved image processor with its torchvision backend whenever torchvision
is installed, and nothing in a saved folder can pin the backend: that backend resizes tensors and
lands up to one grey level away from open_clip's PIL resize. `DualEncoderProcessor` therefore
swaps any torchvision-backed CLIP/SigLIP image processor for its PIL twin (`pil_backend`), and
plain loads need `backend="pil"` (docs/inputs.md, "CLIP preprocessing").

`DualEncoderProcessor` gives a transformers `CLIPProcessor`/`SiglipProcessor` the package's
processor contract (`image_inputs(rows, train)`, `text_inputs(captions)`) and saves as the plain
processor, so saved folders stay loadable without this package.
"""

from __future__ import annotations

import gzip
import random
from collections.abc import Sequence
from functools import cache
from importlib import resources
from pathlib import Path

import torch
from PIL import Image

from ...imagery import rgb_image

#: `processor.vocab` of a CLIP recipe: the CLIP BPE vocabulary packaged with rs_retrieval.
CLIP_BPE = "clip_bpe"

#: Merges of the CLIP BPE file that make up the 49,408-token vocabulary (49152 - 256 - 2).
NUM_CLIP_MERGES = 48_894
CLIP_CONTEXT_LENGTH = 77
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_RIGHT_ANGLES = (None, Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270)


def _byte_symbols() -> list[str]:
    """GPT-2's reversible byte -> printable-character table, in CLIP's id order: the 188 printable
    bytes as themselves, then the other 68 bytes as U+0100 onward."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [256 + n for n in range(256 - len(printable))]
    return [chr(code) for code in printable + others]


def _bpe_path() -> Path:
    return Path(str(resources.files("rs_retrieval").joinpath("resources", "clip_bpe_simple_vocab_16e6.txt.gz")))


@cache
def clip_vocabulary(bpe_path: str | None = None) -> tuple[dict[str, int], tuple[tuple[str, str], ...]]:
    """(token -> id, merges) of the CLIP tokenizer from a `bpe_simple_vocab_16e6.txt.gz` file."""
    path = Path(bpe_path) if bpe_path else _bpe_path()
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        lines = handle.read().split("\n")[1 : NUM_CLIP_MERGES + 1]
    merges = tuple(tuple(line.split()) for line in lines)
    if len(merges) != NUM_CLIP_MERGES or any(len(pair) != 2 for pair in merges):
        raise ValueError(
            f"{path} is not a CLIP BPE merges file (expected {NUM_CLIP_MERGES} 'left right' lines after the header)"
        )
    symbols = _byte_symbols()
    tokens = (
        symbols
        + [s + "</w>" for s in symbols]
        + ["".join(pair) for pair in merges]
        + ["<|startoftext|>", "<|endoftext|>"]
    )
    return {token: index for index, token in enumerate(tokens)}, merges


def build_clip_tokenizer(bpe_path: str | None = None, model_max_length: int = CLIP_CONTEXT_LENGTH):
    """transformers `CLIPTokenizer` with the 49,408-token CLIP vocabulary, built without the Hub."""
    from transformers import CLIPTokenizer

    vocab, merges = clip_vocabulary(str(bpe_path) if bpe_path else None)
    return CLIPTokenizer(vocab=dict(vocab), merges=list(merges), model_max_length=model_max_length)


def build_clip_image_processor(
    image_size: int = 224, image_mean: Sequence[float] = OPENAI_CLIP_MEAN, image_std: Sequence[float] = OPENAI_CLIP_STD
):
    """open_clip's validation transform: shortest side -> `image_size` (bicubic), centre crop, normalise."""
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    return CLIPImageProcessorPil(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        image_mean=list(image_mean),
        image_std=list(image_std),
    )


def build_clip_processor(
    image_size: int = 224, bpe_path: str | None = None, image_mean=OPENAI_CLIP_MEAN, image_std=OPENAI_CLIP_STD
):
    """A plain transformers `CLIPProcessor` (PIL image processor + offline CLIP tokenizer)."""
    from transformers import CLIPProcessor

    return CLIPProcessor(
        image_processor=build_clip_image_processor(image_size, image_mean, image_std),
        tokenizer=build_clip_tokenizer(bpe_path),
    )


def pil_backend(image_processor):
    """The PIL-backed twin of a torchvision-backed CLIP/SigLIP image processor (same settings);
    any other image processor unchanged."""
    if getattr(image_processor, "backend", "pil") == "pil":
        return image_processor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    twins = {"CLIPImageProcessor": CLIPImageProcessorPil, "SiglipImageProcessor": SiglipImageProcessorPil}
    twin = twins.get(type(image_processor).__name__)
    return image_processor if twin is None else twin.from_dict(image_processor.to_dict())


def random_view(
    image: Image.Image, scale: tuple[float, float] = (0.9, 1.0), rng: random.Random | None = None
) -> Image.Image:
    """A training view: a random right-angle rotation (aerial images have no up) and a random crop keeping `scale` of
    the area (aspect 3/4-4/3), as the RS CLIP recipes do (docs/clip-zeroshot.md#training-and-fine-tuning-clip-models).
    The image processor then resizes and centre-crops it as at inference."""
    rng = rng or random
    turn = rng.choice(_RIGHT_ANGLES)
    if turn is not None:
        image = image.transpose(turn)
    width, height = image.size
    for _ in range(10):
        area = width * height * rng.uniform(*scale)
        aspect = (3 / 4) * (16 / 9) ** rng.random()  # log-uniform in [3/4, 4/3]
        w, h = round((area * aspect) ** 0.5), round((area / aspect) ** 0.5)
        if 0 < w <= width and 0 < h <= height:
            left, top = rng.randint(0, width - w), rng.randint(0, height - h)
            return image.crop((left, top, left + w, top + h))
    return image


def _input_size(image_processor) -> int:
    """The side of the model input a CLIP/SigLIP image processor makes."""
    sizes = getattr(image_processor, "crop_size", None) or image_processor.size
    return min(dict(sizes).values())


class DualEncoderProcessor:
    """The package's processor contract around a transformers `CLIPProcessor`/`SiglipProcessor`.

    `text_padding` is "longest" for CLIP (the causal mask makes padding irrelevant) and
    "max_length" for SigLIP, whose text tower pools the last position and was trained on fixed
    64-token inputs. Every other attribute (tokenizer, image_processor, save_pretrained,
    push_to_hub, __call__) is the wrapped processor's, so what is saved is the plain processor.
    `bands`/`rescale_mode` (`rs_retrieval.multispectral.apply_bands`) pick and scale the bands of
    multi-band inputs for this session; they are not saved.
    Its image processor is always the PIL backend (`pil_backend`), whatever transformers picked.
    """

    bands: list[int] | None = None
    rescale_mode: str = "auto"

    def __init__(self, processor, text_padding: str = "longest", train_scale: tuple[float, float] = (0.9, 1.0)):
        processor.image_processor = pil_backend(processor.image_processor)
        self.processor = processor
        self.text_padding = text_padding
        self.train_scale = tuple(train_scale)

    @classmethod
    def from_config(cls, config, vocab=CLIP_BPE, **options):
        """The processor contract's builder: the CLIP BPE tokenizer (`clip_bpe`, the packaged
        vocabulary, or a BPE merges file) + an image processor at the config's image size.

        Options: `image_mean`, `image_std` (default OpenAI CLIP's) and `train_scale` (area range of
        the training crop, default [0.9, 1.0])."""
        unknown = sorted(set(options) - {"image_mean", "image_std", "train_scale"})
        if unknown:
            raise TypeError(f"{unknown} do not apply to a CLIP processor (image_mean, image_std, train_scale)")
        bpe_path = None if vocab in (None, CLIP_BPE) else vocab
        colour = {key: options[key] for key in ("image_mean", "image_std") if key in options}
        processor = build_clip_processor(config.vision_config.image_size, bpe_path, **colour)
        return cls(processor, train_scale=tuple(options.get("train_scale", (0.9, 1.0))))

    def __getattr__(self, name):
        if name == "processor":  # not yet set (e.g. during unpickling)
            raise AttributeError(name)
        return getattr(self.processor, name)

    def __call__(self, *args, **kwargs):
        return self.processor(*args, **kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.processor!r}, text_padding={self.text_padding!r})"

    def image_inputs(self, rows: dict[str, list], train: bool = False) -> dict[str, torch.Tensor]:
        """Pixel values of PIL images, arrays or file paths; anything that is not 8-bit RGB becomes
        it by the `rs_retrieval.imagery` rule (16-bit, float and multi-band files included)."""
        sources = rows.get("filename") or [None] * len(rows["image"])
        input_size = _input_size(self.processor.image_processor)
        images = [
            rgb_image(image, self.rescale_mode, self.bands, source=source, input_size=input_size)
            for image, source in zip(rows["image"], sources)
        ]
        if train:
            images = [random_view(image, self.train_scale) for image in images]
        return {"pixel_values": self.processor.image_processor(images, return_tensors="pt")["pixel_values"]}

    def text_inputs(self, captions: Sequence[str]) -> dict[str, torch.Tensor]:
        tokenizer = self.processor.tokenizer
        max_length = min(tokenizer.model_max_length, 512)
        encoded = tokenizer(
            list(captions), padding=self.text_padding, truncation=True, max_length=max_length, return_tensors="pt"
        )
        return {
            "input_ids": encoded["input_ids"],
            "attention_mask": encoded.get("attention_mask", torch.ones_like(encoded["input_ids"])),
        }


def as_retrieval_processor(processor):
    """The processor itself if it follows the contract; a transformers CLIP/SigLIP processor wrapped."""
    if hasattr(processor, "image_inputs") and hasattr(processor, "text_inputs"):
        return processor
    name = type(processor).__name__
    if name.startswith("Siglip"):
        return DualEncoderProcessor(processor, text_padding="max_length")
    if name.startswith("CLIP"):
        return DualEncoderProcessor(processor)
    raise TypeError(f"{name} follows neither the retrieval processor contract nor is a CLIP/SigLIP processor")
