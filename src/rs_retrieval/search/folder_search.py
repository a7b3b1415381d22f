"""Text-to-image search over a folder of images, with an on-disk embedding cache.

Image encodings are cached per model in one safetensors file, `<cache_dir>/<model fingerprint>.safetensors`:
the fingerprint hashes the model config, every weight tensor and the image-processor settings, and
rows are keyed by the SHA-1 of each image file's bytes. A repeated query over the same folder
encodes only new or changed images. A small stat index (path, size, mtime -> SHA-1) avoids
re-reading unchanged files to hash them. Scores come from the model contract
(`encode_images`/`encode_texts`/`score`), so pair-dependent methods work unchanged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from filelock import FileLock
from PIL import Image, ImageDraw, ImageFont, ImageOps
from safetensors.torch import load_file, save
from tqdm.auto import tqdm

from ..errors import DiskFullError, RSRetrievalError
from ..fileio import atomic_write_bytes, atomic_write_text, save_png_atomic
from ..imagery import IMAGE_EXTENSIONS, ImageError, list_image_files, read_image, to_rgb_uint8

logger = logging.getLogger(__name__)

CACHE_FORMAT = "1"
#: Images scored per `model.score` call (bounds memory of pair-dependent scoring).
SCORE_CHUNK = 4096
#: Lines of query text drawn on a contact sheet; longer queries end with "...".
MAX_TITLE_LINES = 3


class SearchError(RSRetrievalError, ValueError):
    """Bad search input (folder, image file, cache file); the message names it."""


def default_cache_dir() -> Path:
    return Path(os.environ.get("RS_RETRIEVAL_CACHE", Path.home() / ".cache" / "rs_retrieval")) / "search"


def model_fingerprint(model, processor=None) -> str:
    """Hash of config + weights (+ image-processor settings, + inference precision other than fp32):
    cached image encodings are valid only for exactly this model, preprocessing and precision."""
    digest = hashlib.blake2b(digest_size=16)
    config = {k: v for k, v in model.config.to_dict().items() if not k.startswith("_") and k != "transformers_version"}
    digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    image_processor = getattr(processor, "image_processor", None)
    if image_processor is not None:
        digest.update(json.dumps(image_processor.to_dict(), sort_keys=True, default=str).encode())
    session_bands = {
        key: vars(processor)[key]
        for key in ("bands", "rescale_mode")
        if processor is not None and key in vars(processor)
    }
    if session_bands:  # CLIP-family processors hold --bands outside their saved image processor
        digest.update(json.dumps(session_bands, sort_keys=True).encode())
    precision = getattr(
        model, "precision", "fp32"
    )  # `rs_retrieval.precision`: bf16/int8 encodings are never mixed with fp32's
    if precision != "fp32":
        digest.update(f"precision:{precision}".encode())
    return digest.hexdigest()


def list_images(images_dir: str | Path, recursive: bool = False) -> list[Path]:
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise SearchError(f"{images_dir} is not a folder")
    files = list_image_files(images_dir, recursive)
    if not files:
        raise SearchError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {images_dir}")
    return files


class EmbeddingCache:
    """Image encodings of one model keyed by file SHA-1, stored in one safetensors file."""

    def __init__(self, cache_dir: str | Path, fingerprint: str):
        self.dir = Path(cache_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / f"{fingerprint}.safetensors"
        self.index_path = self.dir / "file_index.json"
        self.tensors: dict[str, torch.Tensor] = {}
        self.rows: dict[str, int] = {}
        self._dirty = self._index_dirty = False
        if self.path.is_file():
            self._load()
        self._file_index = self._read_index()

    def _load(self) -> None:
        self.tensors, keys = self._read_cache_file()
        self.rows = {key: row for row, key in enumerate(keys)}

    def _read_cache_file(self) -> tuple[dict[str, torch.Tensor], list[str]]:
        from safetensors import safe_open

        try:
            with safe_open(str(self.path), framework="pt") as handle:
                metadata = handle.metadata() or {}
            tensors = load_file(str(self.path))
            keys = json.loads(metadata["sha1"])
        except Exception as err:  # a corrupt cache file is rebuilt, never trusted
            raise SearchError(f"embedding cache {self.path} is unreadable ({err}); delete it to rebuild") from err
        if metadata.get("format") != CACHE_FORMAT or any(len(t) != len(keys) for t in tensors.values()):
            raise SearchError(f"embedding cache {self.path} is inconsistent; delete it to rebuild")
        return tensors, keys

    def _read_index(self) -> dict[str, list]:
        if not self.index_path.is_file():
            return {}
        try:
            return json.loads(self.index_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            return {}  # the stat index is only a shortcut: rebuild it

    def file_sha1(self, path: Path) -> str:
        """SHA-1 of the file's bytes, reusing the stored value while size and mtime are unchanged."""
        stat = path.stat()
        key = str(path.resolve())
        known = self._file_index.get(key)
        if known and known[0] == stat.st_size and known[1] == stat.st_mtime_ns:
            return known[2]
        sha1 = hashlib.sha1(path.read_bytes()).hexdigest()
        self._file_index[key] = [stat.st_size, stat.st_mtime_ns, sha1]
        self._index_dirty = True
        return sha1

    def add(self, keys: list[str], encoded: dict[str, torch.Tensor]) -> None:
        if self.tensors and set(encoded) != set(self.tensors):
            raise SearchError(f"cache {self.path} holds {sorted(self.tensors)}, new encodings hold {sorted(encoded)}")
        for name, value in encoded.items():
            value = value.detach().cpu().contiguous()
            self.tensors[name] = torch.cat([self.tensors[name], value]) if name in self.tensors else value
        for key in keys:
            self.rows[key] = len(self.rows)
        self._dirty = True

    def gather(self, keys: list[str]) -> dict[str, torch.Tensor]:
        index = torch.tensor([self.rows[k] for k in keys], dtype=torch.long)
        return {name: tensor.index_select(0, index) for name, tensor in self.tensors.items()}

    def save(self) -> None:
        """Write what changed, atomically, merged under a file lock with rows other processes saved
        since this cache was read (concurrent searches over different folders all keep their rows)."""
        if not (self._dirty or self._index_dirty):
            return
        with FileLock(str(self.dir / ".lock")):
            if self._dirty:
                if self.path.is_file():
                    tensors, keys = self._read_cache_file()
                    new = [(row, key) for row, key in enumerate(keys) if key not in self.rows]
                    if new:
                        self.add(
                            [key for _, key in new],
                            {name: value[[row for row, _ in new]] for name, value in tensors.items()},
                        )
                order = sorted(self.rows, key=self.rows.get)
                atomic_write_bytes(
                    self.path, save(self.tensors, metadata={"format": CACHE_FORMAT, "sha1": json.dumps(order)})
                )
            if self._index_dirty:
                self._file_index = {**self._read_index(), **self._file_index}
                atomic_write_text(self.index_path, json.dumps(self._file_index))
        self._dirty = self._index_dirty = False


def _display_image(path: Path) -> Image.Image:
    """RGB picture of an image file by the imagery rule (16-bit, float, multi-band included)."""
    return Image.fromarray(to_rgb_uint8(read_image(path), source=str(path)))


def _device(model) -> torch.device:
    return next(model.parameters()).device


def _to(inputs: dict, device: torch.device) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}


def _image_inputs_or_skip(processor, paths: Sequence[Path], strict: bool, skipped: list) -> tuple[list[Path], dict]:
    """Processor inputs of the readable files among `paths`; the others go to `skipped` (or raise)."""
    kept, parts = [], []
    for path in paths:
        try:
            parts.append(processor.image_inputs({"image": [str(path)], "filename": [str(path)]}, train=False))
        except ImageError as err:
            if strict:
                raise
            logger.warning("%s (skipped)", err)
            skipped.append((path, str(err)))
            continue
        kept.append(path)
    return kept, {key: torch.cat([part[key] for part in parts]) for key in parts[0]} if parts else {}


@torch.no_grad()
def encode_image_files(
    model, processor, paths: Sequence[Path], batch_size: int = 32, strict: bool = True
) -> tuple[list[Path], dict[str, torch.Tensor], list[tuple[Path, str]]]:
    """`model.encode_images` outputs (the keys the model's `score` needs) for image files, batched.

    Returns (encoded paths, their encodings, skipped [(path, reason)]). A file that cannot be read
    or interpreted raises with `strict`; otherwise it is skipped with a warning naming it.
    """
    device, parts, encoded, skipped = _device(model), {}, [], []
    for start in range(0, len(paths), batch_size):
        kept, inputs = _image_inputs_or_skip(processor, paths[start : start + batch_size], strict, skipped)
        if not kept:
            continue
        outputs = model.encode_images(**_to(inputs, device))
        for key in model.image_cache_keys:
            parts.setdefault(key, []).append(outputs[key].cpu())
        encoded += kept
    return encoded, {key: torch.cat(values) for key, values in parts.items()}, skipped


@torch.no_grad()
def _text_cache(model, processor, texts: Sequence[str]) -> dict[str, torch.Tensor]:
    outputs = model.encode_texts(**_to(processor.text_inputs(list(texts)), _device(model)))
    return {key: outputs[key] for key in model.text_cache_keys}


@torch.no_grad()
def _scores(model, image_cache: dict[str, torch.Tensor], text_cache: dict[str, torch.Tensor]) -> torch.Tensor:
    """[N_images] scores of every image against the single text, scored in chunks of images."""
    device, n = _device(model), len(next(iter(image_cache.values())))
    chunk = SCORE_CHUNK if getattr(model, "score_is_blockwise", True) else max(n, 1)
    chunks = []
    for start in range(0, n, chunk):
        part = {k: v[start : start + chunk].to(device) for k, v in image_cache.items()}
        chunks.append(model.score(part, text_cache)[:, 0].float().cpu())
    return torch.cat(chunks)


def _ranked(items: Sequence, scores: torch.Tensor, top_k: int | None) -> list[tuple]:
    """Items by descending score; ties keep input order (stable sort)."""
    order = torch.sort(-scores, stable=True).indices
    if top_k is not None:
        if top_k < 1:
            raise SearchError(f"top_k must be >= 1, got {top_k}")
        order = order[:top_k]
    return [(items[i], float(scores[i])) for i in order.tolist()]


def _check_query(query) -> None:
    if not isinstance(query, str) or not query.strip():
        raise SearchError(f"query must be a non-empty string, got {query!r}")


@dataclass
class EncodedFolder:
    """The readable images of a folder with their cached encodings (rows in `paths` order)."""

    paths: list[Path]
    encodings: dict[str, torch.Tensor]
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def encode_folder(
    images_dir: str | Path,
    model,
    processor,
    cache_dir: str | Path | None = None,
    batch_size: int = 32,
    recursive: bool = False,
    strict: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> EncodedFolder:
    """Encodings of the images of `images_dir`, from the cache where it has them.

    Only images whose bytes are not yet in the cache of this exact model are encoded, batch by
    batch (`progress(done, total)` after each); the cache (under `cache_dir`, default
    `~/.cache/rs_retrieval/search`) is updated atomically. Files that cannot be read are left out
    with a warning each and a summary (`strict=True` raises instead).
    """
    paths = list_images(images_dir, recursive)
    model.eval()
    cache = EmbeddingCache(cache_dir or default_cache_dir(), model_fingerprint(model, processor))
    key_of, skipped = {}, []
    for path in paths:
        try:
            key_of[path] = cache.file_sha1(path)
        except OSError as err:  # e.g. permission denied
            if strict:
                raise SearchError(f"cannot read {path}: {err}") from err
            logger.warning("skipped %s: %s", path, err)
            skipped.append((path, str(err)))
    first_path = {}
    for path, key in key_of.items():
        first_path.setdefault(key, path)
    missing = [key for key in first_path if key not in cache.rows]
    for start in tqdm(range(0, len(missing), batch_size), desc="encoding images", unit="batch", disable=not missing):
        batch = missing[start : start + batch_size]
        encoded, encodings, unreadable = encode_image_files(
            model, processor, [first_path[k] for k in batch], batch_size, strict
        )
        skipped += unreadable
        if encoded:
            cache.add([key_of[path] for path in encoded], encodings)
        if progress is not None:
            progress(start + len(batch), len(missing))
    try:
        cache.save()
    except DiskFullError as err:  # the encodings are in memory: the search itself is complete
        logger.warning("%s; the results are complete, only the cache was not updated", err)
    if skipped:
        logger.warning(
            "skipped %d of %d images that cannot be read (strict=True / --strict fails instead)",
            len(skipped),
            len(paths),
        )
    readable = [(path, key) for path, key in key_of.items() if key in cache.rows]
    if not readable:
        raise SearchError(f"none of the {len(paths)} images in {images_dir} can be read")
    return EncodedFolder([path for path, _ in readable], cache.gather([key for _, key in readable]), skipped)


def rank_encoded(
    query: str, folder: EncodedFolder, model, processor, top_k: int | None = 10
) -> list[tuple[Path, float]]:
    """Rank an encoded folder (`encode_folder`) for the text `query`: [(path, score)], best first."""
    _check_query(query)
    warn_unknown_words(processor, query)
    scores = _scores(model, folder.encodings, _text_cache(model, processor, [query]))
    return _ranked(folder.paths, scores, top_k)


def search_images(
    query: str,
    images_dir: str | Path,
    model,
    processor,
    top_k: int | None = 10,
    cache_dir: str | Path | None = None,
    batch_size: int = 32,
    recursive: bool = False,
    strict: bool = False,
) -> list[tuple[Path, float]]:
    """Rank the images of `images_dir` for the text `query`: [(path, score)], best first
    (encodings cached and unreadable files skipped as in `encode_folder`)."""
    _check_query(query)
    folder = encode_folder(images_dir, model, processor, cache_dir, batch_size, recursive, strict)
    return rank_encoded(query, folder, model, processor, top_k)


def warn_unknown_words(processor, query: str) -> bool:
    """Warn (and return True) when no word of `query` is in the model's vocabulary: every image
    would then be scored against the unknown-word token alone, and the ranking means nothing."""
    tokenizer = getattr(processor, "tokenizer", None)
    if tokenizer is None or tokenizer.unk_token_id is None:
        return False
    special = set(tokenizer.all_special_ids) - {tokenizer.unk_token_id}
    ids = [i for i in tokenizer(query)["input_ids"] if i not in special]
    if ids and any(i != tokenizer.unk_token_id for i in ids):
        return False
    logger.warning("no word of the query %r is in the model's vocabulary: the ranking is arbitrary", query[:80])
    return True


@torch.no_grad()
def rank_captions(image, captions: Sequence[str], model, processor) -> list[tuple[str, float]]:
    """Image -> captions: every caption with its score against `image` (a path or PIL image), best first."""
    if not captions:
        raise SearchError("captions is empty")
    blank = [index for index, caption in enumerate(captions, start=1) if not caption.strip()]
    if blank:
        raise SearchError(f"caption(s) {blank} are empty; every caption needs words to be scored")
    image = (
        os.fspath(image) if isinstance(image, os.PathLike) else image
    )  # a path is read by the processor, which names it in errors
    model.eval()
    inputs = processor.image_inputs({"image": [image]}, train=False)
    outputs = model.encode_images(**_to(inputs, _device(model)))
    image_cache = {key: outputs[key] for key in model.image_cache_keys}
    scores = model.score(image_cache, _text_cache(model, processor, captions))[0].float().cpu()
    return _ranked(list(captions), scores, None)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no sized default font
        return ImageFont.load_default()


def make_contact_sheet(
    query: str, results: Sequence[tuple[Path, float]], out_path: str | Path, thumb_size: int = 160, columns: int = 5
) -> Path:
    """PNG with the query on top and the ranked thumbnails (rank, score, file name) in a grid."""
    if not results:
        raise SearchError("no results to draw")
    pad, label_h, font, small = 10, 36, _font(18), _font(13)
    columns = max(1, min(columns, len(results)))
    rows = -(-len(results) // columns)
    width = pad + columns * (thumb_size + pad)
    title = textwrap.wrap(
        f'Query: "{query}"', width=max(20, width // 10), max_lines=MAX_TITLE_LINES, placeholder=' ..."'
    ) or [""]
    header_h = pad + 24 * len(title) + pad
    sheet = Image.new("RGB", (width, header_h + rows * (thumb_size + label_h + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    for line_no, line in enumerate(title):
        draw.text((pad, pad + 24 * line_no), line, fill="black", font=font)
    for rank, (path, score) in enumerate(results, start=1):
        row, col = divmod(rank - 1, columns)
        x, y = pad + col * (thumb_size + pad), header_h + row * (thumb_size + label_h + pad)
        thumb = ImageOps.contain(_display_image(Path(path)), (thumb_size, thumb_size))
        sheet.paste(thumb, (x + (thumb_size - thumb.width) // 2, y + (thumb_size - thumb.height) // 2))
        draw.rectangle([x - 1, y - 1, x + thumb_size, y + thumb_size], outline="gray")
        draw.text((x, y + thumb_size + 3), f"#{rank}  {score:.3f}", fill="black", font=small)
        draw.text((x, y + thumb_size + 19), Path(path).name[: thumb_size // 7], fill="dimgray", font=small)
    return save_png_atomic(sheet, out_path)
