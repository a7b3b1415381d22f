"""Encode a source's items into parts, split across processes, resumable.

Rank r of W takes items r, r + W, r + 2W, ... It hashes them (content keys), skips keys that the
previous index generation or an earlier, interrupted build already holds, encodes the rest in
batches, and every `part_rows` rows writes an atomic part file `parts/rank<r>-<seq>.safetensors`
(tensors = the model's image cache, metadata = the keys). At the end each rank writes the keys of
its items (`parts/keys-<r>-of-<W>.json`, with the items it had to skip), and rank 0 merges.
A killed build leaves its finished parts behind; the next build encodes only what is missing.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save
from tqdm.auto import tqdm

from ..fileio import atomic_write_bytes, atomic_write_text, write_json_atomic
from ..imagery import ImageError
from ..search.folder_search import _device, _to
from .sources import UnreadableItemError
from .store import PARTS_DIR

logger = logging.getLogger(__name__)

#: Encoded rows per part file: what a killed build can lose at most, per rank.
PART_ROWS = 256


@dataclass
class EncodeResult:
    """Per rank: item index -> content key, items skipped (index -> reason), rows encoded, and
    tiles left out because they are mostly nodata (counted, not listed: archives have many)."""

    keys: dict[int, str] = field(default_factory=dict)
    skipped: dict[int, str] = field(default_factory=dict)
    encoded: int = 0
    nodata: int = 0


def claim_parts(folder: Path, fingerprint: str) -> None:
    """Keep the parts of an interrupted build only if the same model wrote them (rank 0, before encoding)."""
    parts_dir = folder / PARTS_DIR
    marker = parts_dir / "fingerprint"
    if parts_dir.exists() and not (marker.is_file() and marker.read_text(encoding="utf-8") == fingerprint):
        shutil.rmtree(parts_dir)
    parts_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(marker, fingerprint)


def part_keys(parts_dir: Path) -> set[str]:
    """Keys already encoded in finished part files (reads only their headers)."""
    keys = set()
    for path in sorted(parts_dir.glob("rank*-*.safetensors")):
        with safe_open(str(path), framework="pt") as handle:
            keys.update(json.loads(handle.metadata()["keys"]))
    return keys


def load_parts(parts_dir: Path) -> tuple[list[str], dict[str, torch.Tensor]]:
    """All finished parts concatenated: (keys, tensors with one row per key)."""
    keys, tensors = [], {}
    for path in sorted(parts_dir.glob("rank*-*.safetensors")):
        with safe_open(str(path), framework="pt") as handle:
            keys += json.loads(handle.metadata()["keys"])
        for name, value in load_file(str(path)).items():
            tensors.setdefault(name, []).append(value)
    return keys, {name: torch.cat(values) for name, values in tensors.items()}


@torch.no_grad()
def encode_inputs(model, inputs: list[dict]) -> dict[str, torch.Tensor]:
    """`model.encode_images` outputs (the image cache keys, on CPU) for per-image processor inputs."""
    batch = {key: torch.cat([one[key] for one in inputs]) for key in inputs[0]}
    outputs = model.encode_images(**_to(batch, _device(model)))
    return {key: outputs[key].cpu() for key in model.image_cache_keys}


def _skip(result: EncodeResult, index: int, error: Exception, strict: bool) -> None:
    if strict:
        raise error
    result.keys.pop(index, None)
    result.skipped[index] = str(error)
    logger.warning("skipped: %s", error)


def encode_source(
    model,
    processor,
    source,
    folder: Path,
    known_keys: set[str],
    rank: int = 0,
    world_size: int = 1,
    batch_size: int = 32,
    strict: bool = False,
    progress: bool = True,
) -> EncodeResult:
    """Encode this rank's share of `source` into `folder/parts`; returns its keys and skips."""
    part_rows = PART_ROWS
    parts_dir = folder / PARTS_DIR
    parts_dir.mkdir(parents=True, exist_ok=True)
    result = EncodeResult()
    done = known_keys | part_keys(parts_dir)
    pending, queued = [], set()
    for index in range(rank, len(source), world_size):
        try:
            key = source.key(index)
        except UnreadableItemError as error:
            _skip(result, index, error, strict)
            continue
        result.keys[index] = key
        if key not in done and key not in queued:
            pending.append(index)
            queued.add(key)
    sequence = len(list(parts_dir.glob(f"rank{rank}-*.safetensors")))
    buffer_keys, buffer = [], {}

    def flush() -> None:
        nonlocal sequence, buffer_keys, buffer
        if buffer_keys:
            tensors = {name: torch.cat(values).contiguous() for name, values in buffer.items()}
            atomic_write_bytes(
                parts_dir / f"rank{rank}-{sequence:05d}.safetensors",
                save(tensors, metadata={"keys": json.dumps(buffer_keys)}),
            )
            sequence, buffer_keys, buffer = sequence + 1, [], {}

    with tqdm(
        total=len(pending), desc=f"encode rank {rank}/{world_size}", unit="img", position=rank, disable=not progress
    ) as bar:
        for start in range(0, len(pending), batch_size):
            inputs, batch_keys = [], []
            for index in pending[start : start + batch_size]:
                try:  # the processor reads and converts each item by the package's image rule
                    row = source.processor_row(index)
                    if row is None:  # a tile that is mostly nodata
                        result.keys.pop(index)
                        result.nodata += 1
                        continue
                    inputs.append(processor.image_inputs(row, train=False))
                    batch_keys.append(result.keys[index])
                except (UnreadableItemError, ImageError) as error:
                    _skip(result, index, error, strict)
            if inputs:
                for name, value in encode_inputs(model, inputs).items():
                    buffer.setdefault(name, []).append(value)
                buffer_keys += batch_keys
                result.encoded += len(inputs)
                if len(buffer_keys) >= part_rows:
                    flush()
            bar.update(len(pending[start : start + batch_size]))
    flush()
    write_json_atomic(
        parts_dir / f"keys-{rank}-of-{world_size}.json",
        {
            "keys": {str(i): k for i, k in result.keys.items()},
            "skipped": {str(i): r for i, r in result.skipped.items()},
            "encoded": result.encoded,
            "nodata": result.nodata,
        },
    )
    return result


def gather_results(folder: Path, world_size: int) -> EncodeResult:
    """Rank 0, after every rank finished: the keys and skips of all ranks."""
    merged = EncodeResult()
    for rank in range(world_size):
        payload = json.loads((folder / PARTS_DIR / f"keys-{rank}-of-{world_size}.json").read_text(encoding="utf-8"))
        merged.keys.update({int(i): k for i, k in payload["keys"].items()})
        merged.skipped.update({int(i): r for i, r in payload["skipped"].items()})
        merged.encoded += payload["encoded"]
        merged.nodata += payload["nodata"]
    return merged


def assemble_rows(
    keys: list[str], parts: tuple[list[str], dict[str, torch.Tensor]], previous
) -> dict[str, np.ndarray]:
    """The image cache for `keys` in order, taking each key's row from the new parts or, failing
    that, from the previous generation (`previous`: (key -> row, ShardReader) or None)."""
    part_keys_list, part_tensors = parts
    part_row = {key: row for row, key in enumerate(part_keys_list)}
    from_parts = np.array([key in part_row for key in keys], dtype=bool)
    names = list(part_tensors) if part_tensors else list(previous[1].shards)
    out = {}
    if from_parts.any():
        rows = torch.tensor([part_row[k] for k, new in zip(keys, from_parts) if new], dtype=torch.long)
        for name in names:
            out.setdefault(name, {})["parts"] = part_tensors[name].index_select(0, rows).numpy()
    if not from_parts.all():
        old_row, reader = previous
        gathered = reader.gather(np.array([old_row[k] for k, new in zip(keys, from_parts) if not new], dtype=np.int64))
        for name in names:
            out.setdefault(name, {})["previous"] = gathered[name]
    result = {}
    for name, pieces in out.items():
        sample = next(iter(pieces.values()))
        array = np.empty((len(keys), *sample.shape[1:]), dtype=sample.dtype)
        if "parts" in pieces:
            array[from_parts] = pieces["parts"]
        if "previous" in pieces:
            array[~from_parts] = pieces["previous"]
        result[name] = array
    return result
