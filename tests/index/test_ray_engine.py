"""`--engine ray` on a local two-CPU Ray cluster (loopback, one per module): the same GeoParquet
rows as the local engine, an actor killed mid-build, an interrupted driver, pool sizing."""

import collections
import os
import signal
import sys
import threading
import time

import numpy as np
import pyarrow as pa
import pytest

from rs_retrieval.index import IndexBuildError, RetrievalIndex, ray_engine
from rs_retrieval.index.geoparquet import embedding_matrix, part_paths, read_embedding_parts
from rs_retrieval.index.ray_engine import RayEngineError, plan_workers
from rs_retrieval.models.amfmn import AMFMNModel

ray = pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")
pytest.importorskip("pystac")

from helpers import load_script
from test_index import QUERY, tiny_amfmn

L2A = ["B04", "B03", "B02"]
OPTIONS = dict(tile_size=256, max_cloud=50, assets=L2A, progress=False, batch_size=2)
TILES = 14  # 4 clear items x 4 tiles, less the 2 nodata tiles of the half-covered item
DEADLINE_S = 300  # a hang (actors holding every CPU) fails the test instead of the run


class SlowAMFMN(AMFMNModel):
    """Takes a while per batch, so a test can act while a build is running."""

    def encode_images(self, *args, **kwargs):
        time.sleep(0.4)
        return super().encode_images(*args, **kwargs)


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, **ray_engine.local_cluster_options())
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
    yield
    ray.shutdown()


@pytest.fixture
def deadline():
    def expire(*_):
        raise TimeoutError(f"the Ray build did not finish within {DEADLINE_S} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(DEADLINE_S)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return load_script("make_stac_demo.py").make_stac_demo(tmp_path_factory.mktemp("stac_demo"))


def dual(slow=False):
    model, processor = tiny_amfmn(seed=1)
    if slow:
        slow_model = SlowAMFMN(model.config).eval()
        slow_model.load_state_dict(model.state_dict())
        model = slow_model
    model.score_is_cosine = True  # a dual encoder: one-stage search
    return model, processor


def rows(folder) -> pa.Table:
    return pa.Table.from_batches(list(read_embedding_parts(folder))).sort_by("id")


def test_pool_leaves_cpus_for_the_read_tasks():
    assert plan_workers({"CPU": 2.0}) == ray_engine.WorkerPlan(1, 1.0, 0.0, 2)
    assert plan_workers({"CPU": 2.0}, workers=2) == ray_engine.WorkerPlan(
        2, 0.5, 0.0, 1
    )  # fractional: never the whole cluster
    assert plan_workers({"CPU": 64.0, "GPU": 8.0}, num_gpus_per_worker=0.5) == ray_engine.WorkerPlan(16, 1.0, 0.5, 4)
    with pytest.raises(RayEngineError, match="has 0 GPU"):
        plan_workers({"CPU": 8.0}, num_gpus_per_worker=1)


def test_ray_engine_writes_the_rows_of_the_local_engine(tmp_path, demo, cluster, deadline):
    model, processor = dual()
    local = RetrievalIndex.build(model, processor, tmp_path / "local", stac=demo, **OPTIONS)
    remote = RetrievalIndex.build(
        model, processor, tmp_path / "ray", stac=demo, engine="ray", ray_workers=2, **OPTIONS
    )
    assert remote.manifest["build"] | {"seconds": 0} == {
        "encoded": TILES,
        "reused": 0,
        "nodata": 2,
        "skipped": 0,
        "workers": 2,
        "engine": "ray",
        "seconds": 0,
    }
    a, b = rows(tmp_path / "local"), rows(tmp_path / "ray")
    assert a.num_rows == TILES and a.drop(["embedding"]).equals(
        b.drop(["embedding"])
    )  # ids, footprints, windows, times
    assert np.abs(embedding_matrix(a) - embedding_matrix(b)).max() < 1e-5
    assert [h.tile_id for h in remote.search(QUERY, k=5)] == [h.tile_id for h in local.search(QUERY, k=5)]
    with pytest.raises(IndexBuildError, match="two-stage"):
        RetrievalIndex.build(*tiny_amfmn(), tmp_path / "amfmn", stac=demo, engine="ray", **OPTIONS)


def encoder_pids() -> list[int]:
    """Ray Data encoder actors started under this test process (never anyone else's)."""
    found = []
    for child in psutil.Process(os.getpid()).children(recursive=True):
        try:
            if "_Encoder" in " ".join(child.cmdline()):
                found.append(child.pid)
        except psutil.NoSuchProcess:
            continue
    return found


@pytest.mark.slow  # one more Ray job (about 55 s on a loaded 2-core machine)
def test_a_killed_actor_is_replaced_and_every_tile_is_written_once(tmp_path, demo, cluster, deadline):
    model, processor = dual(slow=True)
    killed = {}

    def kill_one_actor_after_the_first_part():
        while not part_paths(tmp_path / "ray") and time.monotonic() < start + DEADLINE_S:
            time.sleep(0.05)
        pids = encoder_pids()
        killed["parts"], killed["pid"] = len(part_paths(tmp_path / "ray")), pids[0] if pids else None
        if pids:
            os.kill(pids[0], signal.SIGKILL)

    start = time.monotonic()
    killer = threading.Thread(target=kill_one_actor_after_the_first_part)
    killer.start()
    index = RetrievalIndex.build(model, processor, tmp_path / "ray", stac=demo, engine="ray", ray_workers=2, **OPTIONS)
    killer.join()
    assert killed["pid"] is not None and not psutil.pid_exists(killed["pid"])
    assert killed["parts"] < TILES // 2  # batches of 2: the actor died with work left
    counts = collections.Counter(rows(tmp_path / "ray").column("id").to_pylist())
    assert len(counts) == TILES and set(counts.values()) == {1} and len(index) == TILES


@pytest.mark.slow  # two more Ray jobs (about 100 s on a loaded 2-core machine)
def test_rerun_after_an_interrupted_driver_reuses_the_finished_parts(tmp_path, demo, cluster, deadline, monkeypatch):
    model, processor = dual(slow=True)

    class InterruptedBar(ray_engine.tqdm):
        def update(self, n=1):
            super().update(n)
            raise KeyboardInterrupt  # Ctrl-C in the driver after the first batch came back

    monkeypatch.setattr(ray_engine, "tqdm", InterruptedBar)
    with pytest.raises(KeyboardInterrupt):
        RetrievalIndex.build(model, processor, tmp_path / "ray", stac=demo, engine="ray", ray_workers=2, **OPTIONS)
    monkeypatch.undo()
    time.sleep(1.0)  # batches still in flight when the driver stopped may land
    finished = {path: path.stat().st_mtime_ns for path in part_paths(tmp_path / "ray")}
    done = rows(tmp_path / "ray").num_rows
    assert 0 < done < TILES
    index = RetrievalIndex.build(model, processor, tmp_path / "ray", stac=demo, engine="ray", ray_workers=2, **OPTIONS)
    stats = index.manifest["build"]
    assert stats["reused"] >= done and stats["encoded"] + stats["reused"] == TILES and len(index) == TILES
    assert all(path.stat().st_mtime_ns == mtime for path, mtime in finished.items())  # kept, not rewritten
    assert sorted(collections.Counter(rows(tmp_path / "ray").column("id").to_pylist()).values()) == [1] * TILES
