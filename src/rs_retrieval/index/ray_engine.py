"""`--engine ray`: encode a source's tiles as a Ray Data job that writes the GeoParquet parts.

The tiles not yet in `INDEX/embeddings` become a Ray Dataset (one block per batch). Read tasks
(`READ_TASK_CPUS` each) read the windows and run the processor; a fixed pool of actors, each
holding the model, encodes the batches and writes one part per batch, named by the hash of its
ids, atomically. A retried batch therefore rewrites the same file instead of adding a copy.

Pool sizing (`plan_workers`): GPU actors, one per `num_gpus_per_worker` GPUs of the cluster; CPU
actors otherwise, half as many as the cluster has CPUs by default. Actors together reserve at
most `ACTOR_CPU_SHARE` of the cluster's CPUs, fractional per actor if needed: an actor pool that
reserves every CPU leaves none for the read tasks that feed it, and the job never progresses.

Faults: Ray Data restarts a dead actor and retries its batch (its defaults for actor pools, `max_restarts=-1` and
`max_task_retries=-1`; the fault test kills an actor mid-build). After the job the driver re-reads the part ids; tiles
still missing are run again (up to `ROUNDS` rounds), and `keep_rows` leaves every id exactly once. An interrupted
driver leaves finished parts behind; the next build encodes only the rest.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..imagery import ImageError
from ..optional import require
from .encode import encode_inputs
from .geoparquet import (
    EMBEDDINGS_DIR,
    EmbeddingPartsError,
    keep_rows,
    model_metadata,
    part_ids,
    part_metadata,
    part_paths,
    write_embedding_part,
)
from .sources import UnreadableItemError
from .vectors import normalize_rows

logger = logging.getLogger(__name__)

#: Fraction of the cluster's CPUs that the encoder actors may reserve together.
ACTOR_CPU_SHARE = 0.5
#: CPUs reserved by each read task (fractional: many reads share a core while they wait on I/O).
READ_TASK_CPUS = 0.25
#: Input blocks of a job at most (the tile list is split into about one block per batch).
MAX_BLOCKS = 4096
#: Jobs run per build at most: the first, then re-runs of tiles whose batches were lost.
ROUNDS = 3
OK, NODATA, UNREADABLE = 0, 1, 2


class RayEngineError(EmbeddingPartsError):
    """The Ray job cannot run as asked (no GPUs for GPU actors, tiles still missing after retries)."""


@dataclass(frozen=True)
class WorkerPlan:
    workers: int
    cpus_per_worker: float
    gpus_per_worker: float
    threads_per_worker: int


def plan_workers(resources: dict, num_gpus_per_worker: float = 0.0, workers: int | None = None) -> WorkerPlan:
    """How many encoder actors to start and what each reserves, from `ray.cluster_resources()`."""
    cpus, gpus = float(resources.get("CPU", 0)), float(resources.get("GPU", 0))
    if cpus <= 0:
        raise RayEngineError("the Ray cluster reports no CPUs")
    if num_gpus_per_worker > 0:
        if gpus < num_gpus_per_worker:
            raise RayEngineError(
                f"--num-gpus-per-worker {num_gpus_per_worker} but the Ray cluster has {gpus:g} GPU(s)"
            )
        count = workers or int(gpus // num_gpus_per_worker)
    else:
        count = workers or max(1, int(cpus * ACTOR_CPU_SHARE))
    if count < 1:
        raise RayEngineError(f"workers must be >= 1, got {count}")
    cpus_per_worker = min(1.0, cpus * ACTOR_CPU_SHARE / count)
    return WorkerPlan(count, cpus_per_worker, float(num_gpus_per_worker), max(1, int(cpus // count)))


def local_cluster_options() -> dict:
    """`ray.init` arguments of a one-machine cluster: loopback only, no dashboard, and workers that
    import this copy of the package."""
    package_parent = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(
        [package_parent, *(str(Path(p).resolve()) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)]
    )
    return {
        "_node_ip_address": "127.0.0.1",
        "include_dashboard": False,
        "runtime_env": {"env_vars": {"PYTHONPATH": path}},
    }


def _connect(ray, address: str | None) -> bool:
    """Join `address` or start a local cluster unless Ray is already initialised; True if we did."""
    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address)
    else:
        ray.init(**local_cluster_options())
    return True


def _resolve(value):
    import ray

    return ray.get(value) if isinstance(value, ray.ObjectRef) else value


def _read_batch(batch: dict, source, processor, template: dict) -> dict:
    """Read task: the processor inputs of each row (zeros where the tile is nodata or unreadable)."""
    source, processor = _resolve(source), _resolve(processor)
    rows = batch["row"]
    status = np.zeros(len(rows), dtype=np.int8)
    reasons = [""] * len(rows)
    arrays = {name: np.zeros((len(rows), *shape), dtype=dtype) for name, (shape, dtype) in template.items()}
    for position, row in enumerate(rows.tolist()):
        try:
            item = source.processor_row(row)
            if item is None:
                status[position] = NODATA
                continue
            for name, value in processor.image_inputs(item, train=False).items():
                arrays[name][position] = value[0].numpy()
        except Exception as error:  # recorded per tile; the driver reports them (or fails when strict)
            status[position], reasons[position] = UNREADABLE, f"{type(error).__name__}: {error}"
    return {"row": rows, "status": status, "reason": np.array(reasons, dtype=object), **arrays}


class _Encoder:
    """Actor: holds the model, encodes a batch, writes it as one part named by its ids."""

    def __init__(self, model, source, folder: str, model_info: tuple[str, str, str], threads: int, device: str):
        import torch

        torch.set_num_threads(threads)
        self.model = _resolve(model).to(device).eval()
        self.source, self.folder, self.model_info = _resolve(source), Path(folder), model_info

    def __call__(self, batch: dict) -> dict:
        import torch

        ok = batch["status"] == OK
        if ok.any():
            rows = batch["row"][ok].tolist()
            inputs = {
                name: torch.from_numpy(np.ascontiguousarray(value[ok]))
                for name, value in batch.items()
                if name not in ("row", "status", "reason")
            }
            vectors = normalize_rows(
                encode_inputs(self.model, [inputs])["embeds"].reshape(len(rows), -1).float().numpy()
            )
            columns = self.source.embedding_columns(rows)
            digest = hashlib.sha1("\n".join(columns["id"]).encode()).hexdigest()[:20]
            name, fingerprint, dtype = self.model_info
            meta = model_metadata(name, fingerprint, vectors.shape[1], dtype)
            write_embedding_part(self.folder / EMBEDDINGS_DIR / f"part-{digest}.parquet", columns, vectors, meta)
        return {"row": batch["row"], "status": batch["status"], "reason": batch["reason"]}


def _template(source, processor, pending: list[int]) -> dict:
    """Shapes and dtypes of the processor's outputs, from the first tile that reads."""
    for row in pending:
        try:
            item = source.processor_row(row)
        except (UnreadableItemError, ImageError):
            continue
        if item is not None:
            return {
                name: (tuple(value.shape[1:]), value.numpy().dtype)
                for name, value in processor.image_inputs(item, train=False).items()
            }
    return {}


def _claim(folder: Path, fingerprint: str) -> None:
    """Drop parts another model wrote and temporary files of killed writers (before any job runs)."""
    parts_dir = folder / EMBEDDINGS_DIR
    parts_dir.mkdir(parents=True, exist_ok=True)
    for leftover in parts_dir.glob(".part-*"):
        leftover.unlink(missing_ok=True)
    for path in part_paths(folder):
        if part_metadata(path)["model_fingerprint"] != fingerprint:
            path.unlink()


def encode_with_ray(
    model,
    processor,
    source,
    folder,
    model_name: str,
    fingerprint: str,
    dtype: str = "float32",
    *,
    batch_size: int = 32,
    address: str | None = None,
    num_gpus_per_worker: float = 0.0,
    workers: int | None = None,
    strict: bool = False,
    progress: bool = True,
) -> dict:
    """Encode the tiles of `source` missing from `folder/embeddings` on a Ray cluster; returns the
    build statistics (encoded, reused, nodata, skipped {row: reason}, workers). The model is
    moved to the CPU and sent to the actors through the object store."""
    ray = require("ray", "archive", "the Ray engine")
    folder = Path(folder)
    _claim(folder, fingerprint)
    ids = source.ids(range(len(source)))
    done = part_ids(folder, fingerprint) & set(ids)
    pending = [row for row, tile_id in enumerate(ids) if tile_id not in done]
    stats = {"encoded": 0, "reused": len(done), "nodata": 0, "skipped": {}, "workers": 0}
    template = _template(source, processor, pending)
    if pending and not template:  # every missing tile is nodata or unreadable: nothing for the actors
        batch = _read_batch({"row": np.array(pending)}, source, processor, {})
        _account(zip(batch["row"].tolist(), batch["status"].tolist(), batch["reason"].tolist()), stats, source, strict)
        pending = []
    started_here = _connect(ray, address) if pending else False
    try:
        if pending:
            plan = plan_workers(ray.cluster_resources(), num_gpus_per_worker, workers)
            stats["workers"] = plan.workers
            refs = ray.put(model.cpu()), ray.put(source), ray.put(processor)
        for _ in range(ROUNDS):
            if not pending:
                break
            outcome = _run_job(
                ray, pending, refs, template, folder, (model_name, fingerprint, dtype), plan, batch_size, progress
            )
            settled = _account(outcome, stats, source, strict)
            present = part_ids(folder, fingerprint)
            stats["encoded"] += sum(ids[row] in present for row in pending)
            pending = [row for row in pending if ids[row] not in present and row not in settled]
        if pending:
            raise RayEngineError(
                f"{len(pending)} tile(s) are still missing after "
                f"{ROUNDS} Ray jobs (first: {source.name(pending[0])}); "
                f"the finished parts in {folder / EMBEDDINGS_DIR} are kept: run the build again"
            )
    finally:
        if started_here:
            ray.shutdown()
    dropped = keep_rows(folder, set(ids))
    if dropped:
        logger.info("removed %d duplicate or deselected row(s) from the embeddings parts", dropped)
    return stats


def _account(outcome, stats: dict, source, strict: bool) -> set[int]:
    """Count nodata tiles and record unreadable ones (or raise when strict); returns those rows."""
    settled = set()
    for row, status, reason in outcome:
        if status == NODATA:
            stats["nodata"] += 1
        elif status == UNREADABLE:
            if strict:
                raise UnreadableItemError(f"cannot read {source.name(row)}: {reason}")
            stats["skipped"][row] = reason
        else:
            continue
        settled.add(row)
    return settled


def _run_job(
    ray, pending, refs, template, folder, model_info, plan: WorkerPlan, batch_size, progress
) -> list[tuple[int, int, str]]:
    """One Ray Data job over `pending` rows; returns (row, status, reason) for the rows it saw."""
    model_ref, source_ref, processor_ref = refs
    # A retried task gets the same block, hence the same batches and part names. Blocks of one
    # batch while there are few; at most MAX_BLOCKS (Ray Data splits large outputs itself).
    blocks = min(MAX_BLOCKS, max(1, -(-len(pending) // batch_size)))
    dataset = ray.data.from_numpy(np.array_split(np.asarray(pending, dtype=np.int64), blocks)).rename_columns(
        {"data": "row"}
    )
    dataset = dataset.map_batches(
        _read_batch,
        batch_size=batch_size,
        batch_format="numpy",
        num_cpus=READ_TASK_CPUS,
        fn_args=(source_ref, processor_ref, template),
    )
    dataset = dataset.map_batches(
        _Encoder,
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=plan.workers),
        num_cpus=plan.cpus_per_worker,
        num_gpus=plan.gpus_per_worker or None,
        fn_constructor_args=(
            model_ref,
            source_ref,
            str(folder),
            model_info,
            plan.threads_per_worker,
            "cuda" if plan.gpus_per_worker else "cpu",
        ),
    )
    outcome = []
    with tqdm(
        total=len(pending), desc=f"encode on Ray ({plan.workers} worker(s))", unit="tile", disable=not progress
    ) as bar:
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            outcome += zip(batch["row"].tolist(), batch["status"].tolist(), batch["reason"].tolist())
            bar.update(len(batch["row"]))
    return outcome
