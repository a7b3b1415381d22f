"""The out-of-core `ivf-ondisk` index built from embedding parts, and place/time filtered search:
exact against brute force over the rows the filter allows, for the flat and the on-disk kinds."""

import json
import shutil
from datetime import UTC, datetime

import numpy as np
import pyarrow.parquet as pq
import pytest
import shapely
from clip_helpers import tiny_clip
from helpers import load_script, write_random_images

from rs_retrieval import load_model_and_processor
from rs_retrieval.cli import main
from rs_retrieval.index import IndexCorruptError, RetrievalIndex, VectorIndexConfig
from rs_retrieval.index.filters import FilterColumns, FilterError, SearchFilter, filtered_search, parse_datetime
from rs_retrieval.index.ondisk import PartsError, build_from_parts, read_parts
from rs_retrieval.index.vectors import normalize_rows, read_faiss_index, search_faiss_index
from rs_retrieval.search.folder_search import _text_cache, model_fingerprint

N, DIM, K = 6000, 32, 10
REGION = (0.0, 40.0, 20.0, 50.0)


@pytest.fixture(scope="module", autouse=True)
def one_faiss_thread():
    """faiss's OpenMP threads spin-wait for each other on a busy machine; one thread trains in a fraction of the time."""
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(threads)


@pytest.fixture(scope="module")
def synthetic_parts():
    return load_script("synthetic_parts.py")


def clustered(n, dim, seed, centres=12):
    rng = np.random.default_rng(seed)
    middle = rng.standard_normal((centres, dim)).astype(np.float32)
    return normalize_rows(
        middle[rng.integers(0, centres, n)] + 0.4 * rng.standard_normal((n, dim)).astype(np.float32)
    ), middle


def exhaustive(kind):
    """Settings under which an IVF index sees every row: the filter is then the only approximation."""
    return VectorIndexConfig(
        kind=kind, nlist=16, pq_m=8, train_size=1000, block_rows=2500, nprobe=16, refine=N, refine_dtype="float32"
    )


@pytest.fixture(scope="module")
def archive(tmp_path_factory, synthetic_parts):
    root = tmp_path_factory.mktemp("archive")
    vectors, centres = clustered(N, DIM, seed=0)
    synthetic_parts.write_parts(
        root / "embeddings", [vectors[s : s + 1500] for s in range(0, N, 1500)], region=REGION, tile_deg=0.5, days=100
    )
    for kind in ("flat", "ivf-ondisk"):
        build_from_parts(root / "embeddings", root / kind, exhaustive(kind))
    queries = normalize_rows(centres[:4] + 0.3 * np.random.default_rng(1).standard_normal((4, DIM)).astype(np.float32))
    return root, vectors, queries


def brute_force(vectors, query, allowed, k):
    rows = np.flatnonzero(allowed)
    order = np.argsort(-(vectors[rows] @ query), kind="stable")[:k]
    return rows[order]


def test_ondisk_index_holds_every_row_under_its_id_opens_after_a_move_and_is_checksummed(archive, tmp_path):
    root, vectors, queries = archive
    moved = tmp_path / "moved"
    shutil.copytree(root / "ivf-ondisk", moved)  # the inverted lists are found beside the index, not at the build path
    index = RetrievalIndex.open(moved)
    assert len(index) == N and index.manifest["vector_index"]["kind"] == "ivf-ondisk"
    assert "g0001/vectors.ivfdata" in index.manifest["files"] and index.faiss_index.ntotal == N
    _, rows = search_faiss_index(index.faiss_index, index.vectors, vectors[[5, 1234, 5999]], 1, index.vector_config)
    assert rows[:, 0].tolist() == [5, 1234, 5999]  # ids are rows across the 3 add blocks
    assert index.metadata.column("id").to_pylist()[:2] == ["tile-000000000", "tile-000000001"]
    data = bytearray((moved / "g0001/vectors.ivfdata").read_bytes())
    data[100] ^= 0xFF
    (moved / "g0001/vectors.ivfdata").write_bytes(bytes(data))
    with pytest.raises(IndexCorruptError, match="vectors.ivfdata"):
        RetrievalIndex.open(moved)


def test_ondisk_defaults_reach_high_recall_with_float16_rescoring(archive, tmp_path):
    root, vectors, queries = archive
    config = VectorIndexConfig(
        kind="ivf-ondisk", nlist=32, pq_m=8, train_size=1500, block_rows=4000, nprobe=8, refine=10
    )
    build_from_parts(root / "embeddings", tmp_path / "index", config)
    index = read_faiss_index(tmp_path / "index/g0001/vectors.faiss")
    stored = np.load(tmp_path / "index/g0001/vectors.npy", mmap_mode="r")
    assert stored.dtype == np.float16 and np.abs(stored - vectors).max() < 1e-3
    _, found = search_faiss_index(index, stored, queries, K, config)
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :K]
    assert np.mean([len(set(f) & set(e)) / K for f, e in zip(found, exact)]) >= 0.9


def test_many_lists_get_an_hnsw_coarse_quantizer_that_search_and_filters_use(archive, tmp_path, monkeypatch):
    import faiss

    from rs_retrieval.index import ondisk

    root, vectors, queries = archive
    monkeypatch.setattr(ondisk, "HNSW_QUANTIZER_FROM", 16)  # as from 16,384 lists at scale
    config = VectorIndexConfig(kind="ivf-ondisk", nlist=16, pq_m=8, train_size=1000, nprobe=4, refine=20, ef_search=32)
    build_from_parts(root / "embeddings", tmp_path / "index", config)
    index = RetrievalIndex.open(tmp_path / "index")
    assert isinstance(faiss.downcast_index(index.faiss_index.quantizer), faiss.IndexHNSW)
    _, found = search_faiss_index(index.faiss_index, index.vectors, queries, K, config)
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :K]
    assert np.mean([len(set(f) & set(e)) / K for f, e in zip(found, exact)]) >= 0.9
    allowed = index.filter_columns.mask(SearchFilter.parse(datetime="2024-02-01/2024-02-20"), N)
    _, rows = filtered_search(index.faiss_index, index.vectors, queries[:1], K, config, allowed, exact_rows=0)
    assert len(rows[0]) == K and allowed[rows[0]].all()


@pytest.mark.parametrize("kind", ["flat", "ivf-ondisk"])
def test_filtered_search_equals_brute_force_over_the_allowed_rows_by_every_route(archive, kind):
    root, vectors, queries = archive
    index = RetrievalIndex.open(root / kind)
    columns = FilterColumns.from_table(index.metadata)
    filters = [
        SearchFilter.parse(bbox="2,41,6,44"),  # a few hundred rows
        SearchFilter.parse(datetime="2024-01-01/2024-02-15"),  # about half
        SearchFilter.parse(bbox="0,40,20,50", datetime="2024-03-01/.."),  # a third, both columns
    ]
    for search_filter in filters:
        allowed = columns.mask(search_filter, N)
        assert 0 < allowed.sum() < N
        for route in (
            {},
            {"exact_rows": 0},
            {"exact_rows": 0, "overfetch_from": 2.0},
        ):  # subset, over-fetch, id selector
            for query in queries:
                _, rows = filtered_search(
                    index.faiss_index, index.vectors, query[None], K, index.vector_config, allowed, **route
                )
                assert rows[0].tolist() == brute_force(vectors, query, allowed, K).tolist(), (search_filter, route)


def test_naive_post_filtering_returns_fewer_than_k_where_filtered_search_returns_the_best_k(tmp_path, synthetic_parts):
    # West of 10 E every tile looks like the query; east of it none does.
    like, unlike = clustered(3000, DIM, seed=2, centres=1)[0], clustered(3000, DIM, seed=3, centres=1)[0]
    synthetic_parts.write_parts(tmp_path / "parts", [like], region=(0, 40, 10, 50), tile_deg=0.1)
    synthetic_parts.write_parts(
        tmp_path / "parts", [unlike], region=(10.2, 40, 20, 50), tile_deg=0.1, first_part=1, first_row=3000
    )
    config = VectorIndexConfig(kind="ivf-ondisk", nlist=8, pq_m=8, train_size=1000, nprobe=2, refine=5)
    build_from_parts(tmp_path / "parts", tmp_path / "index", config)
    index = RetrievalIndex.open(tmp_path / "index")
    allowed = FilterColumns.from_table(index.metadata).mask(SearchFilter.parse(bbox="10.1,40,20,50"), 6000)
    assert allowed[3000:].all() and not allowed[:3000].any()
    query = like[:1]
    _, unfiltered = search_faiss_index(index.faiss_index, index.vectors, query, K * 10, config)
    assert allowed[unfiltered[0]].sum() < K  # post-filtering the 100 best finds nothing
    vectors = np.concatenate([like, unlike])
    for route in ({}, {"exact_rows": 0}):
        _, rows = filtered_search(index.faiss_index, index.vectors, query, K, config, allowed, **route)
        assert len(rows[0]) == K and allowed[rows[0]].all()
        truth = brute_force(vectors, query[0], allowed, K)
        assert len(set(rows[0]) & set(truth)) >= 8  # PQ candidates, nprobe widened until k allowed rows are found


def test_filter_parsing_open_ends_whole_days_antimeridian_and_one_line_errors():
    day = 86_400_000_000
    start, end = parse_datetime("2024-05-01/2024-05-02")
    assert start == int(datetime(2024, 5, 1, tzinfo=UTC).timestamp() * 1e6) and end == start + 2 * day - 1
    assert parse_datetime("../2024-05-01T12:00:00Z")[0] is None
    instant = parse_datetime("2024-05-01T12:00:00+02:00")
    assert instant[0] == instant[1] == int(datetime(2024, 5, 1, 10, tzinfo=UTC).timestamp() * 1e6)
    for bad in ("../..", "2024-05-03/2024-05-01", "May 1st"):
        with pytest.raises(FilterError):
            parse_datetime(bad)
    for bad in ("1,2,3", "0,50,10,40", "a,b,c,d", "0,0,200,10"):
        with pytest.raises(FilterError):
            SearchFilter.parse(bbox=bad)
    import pyarrow as pa

    table = pa.table(
        {
            "bbox": pa.array(
                [
                    {"xmin": 170.0, "ymin": 0.0, "xmax": 171.0, "ymax": 1.0},
                    {"xmin": -175.0, "ymin": 0.0, "xmax": -174.0, "ymax": 1.0},
                    {"xmin": 0.0, "ymin": 0.0, "xmax": 1.0, "ymax": 1.0},
                    None,
                ]
            )
        }
    )
    columns = FilterColumns.from_table(table)
    assert columns.mask(SearchFilter.parse(bbox="165,-5,-170,5"), 4).tolist() == [True, True, False, False]
    with pytest.raises(FilterError, match="no datetime"):
        columns.mask(SearchFilter.parse(datetime="2024-01-01"), 4)


def test_cli_builds_from_parts_and_searches_with_filters_into_geojson_and_geoparquet(
    tmp_path, synthetic_parts, capsys
):
    model, processor = tiny_clip()
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    model, processor = load_model_and_processor(
        str(tmp_path / "model")
    )  # as the CLI loads it (its fingerprint is of the loaded pair)
    vectors, _ = clustered(3000, model.config.projection_dim, seed=4)
    synthetic_parts.write_parts(
        tmp_path / "embeddings",
        [vectors[:1500], vectors[1500:]],
        fingerprint=model_fingerprint(model, processor),
        region=REGION,
        tile_deg=0.5,
        days=60,
    )
    out = str(tmp_path / "index")
    assert (
        main(
            [
                "index",
                "build",
                "--model",
                str(tmp_path / "model"),
                "--parts",
                str(tmp_path / "embeddings"),
                "--kind",
                "ivf-ondisk",
                "--nlist",
                "8",
                "--nprobe",
                "8",
                "--pq-m",
                "4",
                "--out",
                out,
            ]
        )
        == 0
    )
    assert "3000 rows, ivf-ondisk index, one-stage search" in capsys.readouterr().out
    query, bbox, when = "a port with ships", "4,42,12,47", "2024-01-10/2024-01-31"
    assert (
        main(
            [
                "index",
                "search",
                out,
                query,
                "-k",
                "7",
                "--bbox",
                bbox,
                "--datetime",
                when,
                "--geojson",
                str(tmp_path / "hits.geojson"),
                "--geoparquet",
                str(tmp_path / "hits.parquet"),
            ]
        )
        == 0
    )

    text = normalize_rows(_text_cache(model, processor, [query])["embeds"].numpy())[0]
    index = RetrievalIndex.open(out)
    allowed = index.filter_columns.mask(SearchFilter.parse(bbox, when), 3000)
    truth = [f"tile-{row:09d}" for row in brute_force(vectors, text, allowed, 7)]
    geojson = json.loads((tmp_path / "hits.geojson").read_text())
    assert [f["properties"]["tile_id"] for f in geojson["features"]] == truth
    box = shapely.box(4, 42, 12, 47)
    for feature in geojson["features"]:
        footprint = shapely.geometry.shape(feature["geometry"])
        assert footprint.intersects(box) and footprint.exterior.is_ccw and footprint.area == pytest.approx(0.25)
        assert "2024-01-10" <= feature["properties"]["datetime"][:10] <= "2024-01-31"
    table = pq.read_table(tmp_path / "hits.parquet")
    assert table.column_names == ["rank", "score", "id", "item_id", "datetime", "geometry"]
    assert table.column("id").to_pylist() == truth
    assert json.loads(table.schema.metadata[b"geo"])["primary_column"] == "geometry"
    parts = pq.read_table(tmp_path / "embeddings", columns=["id", "geometry"]).to_pydict()
    where = dict(zip(parts["id"], parts["geometry"]))
    assert all(
        shapely.from_wkb(g).equals(shapely.from_wkb(where[i]))
        for i, g in zip(truth, table.column("geometry").to_pylist())
    )

    assert main(["index", "search", out, query, "--datetime", "2030-01-01/.."]) == 0
    assert "no hits" in capsys.readouterr().out
    other, other_processor = tiny_clip(seed=1)
    other.save_pretrained(tmp_path / "other")
    other_processor.save_pretrained(tmp_path / "other")
    assert (
        main(
            [
                "index",
                "build",
                "--model",
                str(tmp_path / "other"),
                "--parts",
                str(tmp_path / "embeddings"),
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )
    assert "were encoded by a model with fingerprint" in capsys.readouterr().err
    assert main(["index", "search", out, query, "--bbox", "1,2,3"]) == 2
    assert (
        main(
            [
                "index",
                "build",
                "--model",
                str(tmp_path / "model"),
                "--images",
                str(write_random_images(tmp_path / "imgs", 2)),
                "--kind",
                "ivf-ondisk",
                "--out",
                str(tmp_path / "y"),
            ]
        )
        == 2
    )
    assert "then index build --parts OUT/embeddings --kind ivf-ondisk" in capsys.readouterr().err


def test_parts_that_disagree_or_are_missing_are_refused_by_name(tmp_path, synthetic_parts):
    with pytest.raises(PartsError, match="no embedding parts"):
        read_parts(tmp_path)
    synthetic_parts.write_parts(tmp_path / "p", [np.eye(4, 8, dtype=np.float32)])
    synthetic_parts.write_parts(tmp_path / "p", [np.eye(4, 6, dtype=np.float32)], first_part=1)
    with pytest.raises(PartsError, match="disagree"):
        read_parts(tmp_path / "p")
