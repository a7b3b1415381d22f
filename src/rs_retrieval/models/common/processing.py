"""Shared RS image processor and the processor base class of every method.

The image side is written on PIL/NumPy/torch (no torchvision). Evaluation preprocessing is
deterministic (resize + normalise). Training augmentation is a separate, explicit step
(`augment`), applied only when a caller asks for it with `train=True`, so the processor that
ships with a checkpoint never augments at inference time.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps
from transformers import BatchFeature, ProcessorMixin
from transformers.image_processing_utils import BaseImageProcessor

from ...imagery import RESCALE_MODES, rgb_image
from .pairing import check_folder_pairing
from .push_to_hub import RetrievalProcessorPushMixin
from .tokenizer_families import TokenizerFamily

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_RESAMPLE = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}


def _colour_ops(img: Image.Image, magnitude: float, rng: random.Random) -> Image.Image:
    """One RandAugment-style colour/geometric op at `magnitude` in [0, 1]."""
    op = rng.choice(
        [
            "identity",
            "autocontrast",
            "equalize",
            "brightness",
            "contrast",
            "sharpness",
            "rotate",
            "shear_x",
            "shear_y",
            "translate_x",
            "translate_y",
        ]
    )
    sign = rng.choice([-1, 1])
    if op == "autocontrast":
        return ImageOps.autocontrast(img)
    if op == "equalize":
        return ImageOps.equalize(img)
    if op in ("brightness", "contrast", "sharpness"):
        enhancer = {
            "brightness": ImageEnhance.Brightness,
            "contrast": ImageEnhance.Contrast,
            "sharpness": ImageEnhance.Sharpness,
        }[op]
        return enhancer(img).enhance(1.0 + sign * 0.9 * magnitude)
    if op == "rotate":
        return img.rotate(sign * 30.0 * magnitude, resample=Image.BILINEAR)
    if op in ("shear_x", "shear_y"):
        s = sign * 0.3 * magnitude
        coeffs = (1, s, 0, 0, 1, 0) if op == "shear_x" else (1, 0, 0, s, 1, 0)
        return img.transform(img.size, Image.AFFINE, coeffs, resample=Image.BILINEAR)
    if op in ("translate_x", "translate_y"):
        t = sign * 0.3 * magnitude * img.size[0]
        coeffs = (1, 0, t, 0, 1, 0) if op == "translate_x" else (1, 0, 0, 0, 1, t)
        return img.transform(img.size, Image.AFFINE, coeffs, resample=Image.BILINEAR)
    return img


def input_image_size(config) -> int:
    """The side a model reads: `config.image_size`, or its vision sub-config's (CLIP family)."""
    size = getattr(config, "image_size", None)
    return int(size if size is not None else config.vision_config.image_size)


class RSImageProcessor(BaseImageProcessor):
    """Resize to a square `size`, scale to [0, 1] and normalise; optional training augmentation.

    Every input (PIL image, array, tensor or file path, any dtype and band count) first becomes RGB
    uint8 by `rs_retrieval.imagery.to_rgb_uint8` with this processor's `rescale_mode` and `bands`
    (saved with it), so 16-bit, float and multispectral imagery is stretched, never clipped. The
    `transformers` call option `do_rescale` names the range of float inputs: True = [0, 255],
    False = already [0, 1].

    Training augmentation (`augment`) covers the recipes of the four methods:
    AMFMN/GaLR: resize `train_resize` (278) -> rotation U[0, `train_rotation_degrees`] -> random
    crop `size`; CMPAGL: random resized crop (`train_scale`) -> horizontal flip -> RandAugment.
    """

    model_input_names = ["pixel_values"]
    #: Constructor arguments a processor builder may set; the input `size` is not among them: it
    #: always comes from the model config.
    SETTINGS = (
        "resample",
        "image_mean",
        "image_std",
        "rescale_mode",
        "bands",
        "train_resize",
        "train_rotation_degrees",
        "train_scale",
        "train_hflip",
        "train_randaugment",
    )

    def __init__(
        self,
        size: int = 256,
        resample: str = "bilinear",
        image_mean: Sequence[float] = IMAGENET_MEAN,
        image_std: Sequence[float] = IMAGENET_STD,
        train_resize: int | None = None,
        train_rotation_degrees: float = 0.0,
        train_scale: Sequence[float] | None = None,
        train_hflip: bool = False,
        train_randaugment: Sequence[float] | None = None,
        rescale_mode: str = "auto",
        bands: Sequence[int] | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if resample not in _RESAMPLE:
            raise ValueError(f"resample must be one of {sorted(_RESAMPLE)}, got {resample!r}")
        if train_resize and train_resize < size:
            raise ValueError(f"train_resize ({train_resize}) must be >= size ({size}) for the random crop")
        if rescale_mode not in RESCALE_MODES:
            raise ValueError(f"rescale_mode must be one of {RESCALE_MODES}, got {rescale_mode!r}")
        self.rescale_mode = rescale_mode
        self.bands = list(bands) if bands is not None else None
        self.size = int(size)
        self.resample = resample
        self.image_mean = list(image_mean)
        self.image_std = list(image_std)
        self.train_resize = train_resize
        self.train_rotation_degrees = float(train_rotation_degrees)
        self.train_scale = list(train_scale) if train_scale is not None else None
        self.train_hflip = bool(train_hflip)
        self.train_randaugment = list(train_randaugment) if train_randaugment is not None else None

    def to_rgb(self, image, do_rescale: bool | None = None, source: str | None = None) -> Image.Image:
        """Any input as an RGB PIL image by this processor's `rescale_mode` and `bands` (see `rs_retrieval.imagery`)."""
        mode = self.rescale_mode
        if (
            do_rescale is not None
            and getattr(image, "dtype", None) is not None
            and str(image.dtype).startswith(("float", "torch.float"))
        ):
            mode = "none" if do_rescale else "unit"
        source = source or getattr(image, "filename", None) or None
        return rgb_image(image, mode, self.bands, source, input_size=self.size)

    def augment(self, image: Image.Image, rng: random.Random | None = None) -> Image.Image:
        """One random training view of `image` at `size` x `size` (PIL in, PIL out)."""
        return self._augment_rgb(self.to_rgb(image), rng or random)

    def _augment_rgb(self, image: Image.Image, rng: random.Random) -> Image.Image:
        resample = _RESAMPLE[self.resample]
        if self.train_scale is not None:
            image = self._random_resized_crop(image, rng, resample)
        else:
            if self.train_resize:
                image = image.resize((self.train_resize, self.train_resize), resample)
            if self.train_rotation_degrees:
                image = image.rotate(
                    rng.uniform(0.0, self.train_rotation_degrees), resample=Image.NEAREST, expand=False, fillcolor=0
                )
            if image.size != (self.size, self.size):
                image = self._random_crop(image, rng)
        if self.train_hflip and rng.random() < 0.5:
            image = ImageOps.mirror(image)
        if self.train_randaugment is not None:
            num_ops, magnitude = int(self.train_randaugment[0]), float(self.train_randaugment[1]) / 10.0
            for _ in range(num_ops):
                image = _colour_ops(image, magnitude, rng)
        return image

    def _random_crop(self, image: Image.Image, rng: random.Random) -> Image.Image:
        width, height = image.size
        if width < self.size or height < self.size:
            image = image.resize((max(width, self.size), max(height, self.size)), _RESAMPLE[self.resample])
            width, height = image.size
        left, top = rng.randint(0, width - self.size), rng.randint(0, height - self.size)
        return image.crop((left, top, left + self.size, top + self.size))

    def _random_resized_crop(self, image: Image.Image, rng: random.Random, resample) -> Image.Image:
        width, height = image.size
        low, high = self.train_scale
        for _ in range(10):
            area = width * height * rng.uniform(low, high)
            aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
            w, h = int(round((area * aspect) ** 0.5)), int(round((area / aspect) ** 0.5))
            if 0 < w <= width and 0 < h <= height:
                left, top = rng.randint(0, width - w), rng.randint(0, height - h)
                return image.crop((left, top, left + w, top + h)).resize((self.size, self.size), resample)
        return image.resize((self.size, self.size), resample)

    def preprocess(
        self,
        images,
        train: bool = False,
        return_tensors: str | None = "pt",
        do_rescale: bool | None = None,
        sources: Sequence[str] | None = None,
        **kwargs,
    ) -> BatchFeature:
        """Images -> `pixel_values` float32 [B, 3, size, size]; `train=True` applies `augment` first.

        `sources` (e.g. the rows' file names) name the images in errors."""
        if not isinstance(images, (list, tuple)):
            images = [images]
        resample = _RESAMPLE[self.resample]
        views = []
        for index, image in enumerate(images):
            image = self.to_rgb(image, do_rescale, sources[index] if sources is not None else None)
            image = self._augment_rgb(image, random) if train else image
            if image.size != (self.size, self.size):
                image = image.resize((self.size, self.size), resample)
            views.append(np.asarray(image, dtype=np.uint8))
        batch = torch.from_numpy(np.stack(views)).permute(0, 3, 1, 2).float().div_(255.0)
        mean = torch.tensor(self.image_mean).view(1, 3, 1, 1)
        std = torch.tensor(self.image_std).view(1, 3, 1, 1)
        pixel_values = (batch - mean) / std
        return BatchFeature({"pixel_values": pixel_values}, tensor_type=None)


class RetrievalProcessor(RetrievalProcessorPushMixin, ProcessorMixin):
    """Image processor + tokenizer; the base of every method's processor.

    `from_config(config, vocab)` is the one builder of every method: the image size comes from the
    model config (`config.image_size`), the fixed text length from `config.max_text_len` when the
    config has one, the tokenizer from the class's `tokenizer_family`, the resampling and training
    augmentation from `image_settings(config)` plus the caller's overrides (a recipe's
    `processor.options`).

    `image_inputs(rows, train)` builds the model's image-side inputs from a batch of dataset rows
    (dict of lists with at least an `image` column); methods that need more than pixels (GaLR's
    local graph) override it. `text_inputs(captions)` tokenises with the method's padding rules.
    """

    #: Subclasses name their tokenizer family (`models.common.tokenizer_families`).
    tokenizer_family: TokenizerFamily | None = None
    #: Fixed length for padded text; None pads to the longest caption in the batch.
    max_text_length: int | None = None

    def __init__(self, image_processor=None, tokenizer=None, **kwargs):
        super().__init__(image_processor, tokenizer, **kwargs)

    @classmethod
    def from_config(cls, config, vocab=None, **overrides):
        """The processor matching `config` for vocabulary `vocab` (a file, a token -> id dict or a
        tokenizer). `overrides` are `RSImageProcessor.SETTINGS` or arguments of the processor's
        constructor; the input size is not one of them (set the model config's `image_size`)."""
        if cls.tokenizer_family is None:
            raise TypeError(f"{cls.__name__} names no tokenizer_family")
        if vocab is None:
            raise ValueError(
                f"{cls.__name__}.from_config needs a vocabulary of the {cls.tokenizer_family.name!r} tokenizer family"
            )
        if "size" in overrides:
            raise ValueError("the image size comes from the model config (image_size), not from processor options")
        image_settings = {
            **cls.image_settings(config),
            **{k: overrides.pop(k) for k in list(overrides) if k in RSImageProcessor.SETTINGS},
        }
        text_length = getattr(config, "max_text_len", None)
        tokenizer = cls.tokenizer_family.tokenizer(vocab, text_length)
        cls.tokenizer_family.check_fits(tokenizer, config)
        image_processor = RSImageProcessor(size=input_image_size(config), **image_settings)
        return cls(image_processor=image_processor, tokenizer=tokenizer, **cls.config_arguments(config), **overrides)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """transformers' loader, then: a folder that also holds a model's config.json must hold this
        processor's model (method, vocabulary, input size), as `AutoProcessor` + `AutoModel` would pair them."""
        processor = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        check_folder_pairing(processor, pretrained_model_name_or_path)
        return processor

    @classmethod
    def image_settings(cls, config) -> dict:
        """The method's `RSImageProcessor` settings (resampling, training augmentation) for `config`."""
        return {}

    @classmethod
    def config_arguments(cls, config) -> dict:
        """Constructor arguments that follow the model config (e.g. GaLR's graph size)."""
        return {}

    def text_inputs(self, captions: Sequence[str]) -> dict[str, torch.Tensor]:
        kwargs = dict(padding="longest", return_tensors="pt")
        if self.max_text_length is not None:
            kwargs.update(padding="max_length", truncation=True, max_length=self.max_text_length)
        encoded = self.tokenizer(list(captions), **kwargs)
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}

    def image_inputs(self, rows: dict[str, list], train: bool = False) -> dict[str, torch.Tensor]:
        return dict(self.image_processor.preprocess(rows["image"], train=train, sources=rows.get("filename")))

    def __call__(self, images=None, text=None, train: bool = False, **kwargs) -> BatchFeature:
        if images is None and text is None:
            raise ValueError("give `images`, `text` or both")
        data = {}
        if images is not None:
            data.update(
                self.image_inputs(
                    {"image": images if isinstance(images, (list, tuple)) else [images], **kwargs}, train=train
                )
            )
        if text is not None:
            data.update(self.text_inputs([text] if isinstance(text, str) else text))
        return BatchFeature(data)
