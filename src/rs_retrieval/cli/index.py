"""`rs-retrieval index build|search|info`: archive and scene search on a vector index.

Encode with N processes (or machines): `accelerate launch --multi_gpu --num_processes N -m
rs_retrieval.cli index build ...` (on a CPU-only machine `--multi_gpu` still starts N gloo ranks;
without it accelerate runs a single process).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .arguments import add_band_argument, add_model_arguments

ROW_NAMES = {"scene": "tiles", "stac": "tiles", "files": "images"}


def build(args: argparse.Namespace) -> int:
    from ..index.retrieval import IndexBuildError, RetrievalIndex
    from ..index.vectors import ONDISK_KIND, VectorIndexConfig
    from ..multispectral import BandChoice, apply_bands, parse_bands
    from ..pretrained import load_model_and_processor

    choice = parse_bands(args.bands)
    model, processor = load_model_and_processor(
        args.model, args.trust_remote_code, args.device, args.allow_weight_mismatch, args.precision
    )
    scene_bands = None
    if choice is not None and args.scene:  # tiles are read with only these bands, in this order
        scene_bands = choice.numbers
        choice = BandChoice(tuple(range(len(choice.indices))), choice.rescale_mode, choice.label)
    apply_bands(processor, choice)
    config = VectorIndexConfig(
        kind=args.kind,
        nlist=args.nlist,
        pq_m=args.pq_m,
        nprobe=args.nprobe,
        ef_search=args.ef_search,
        refine_dtype=args.refine_dtype,
        train_size=args.train_size,
    )
    if args.parts:
        index = RetrievalIndex.from_parts(
            model, processor, args.parts, args.out, index=config, overwrite=args.overwrite
        )
        _print_summary(index)
        return 0
    if args.kind == ONDISK_KIND:
        raise IndexBuildError(
            f"--kind {ONDISK_KIND} is built from embedding parts: "
            "build the embeddings first (every index build writes "
            f"OUT/embeddings), then index build --parts OUT/embeddings --kind {ONDISK_KIND} --out NEW"
        )
    index = RetrievalIndex.build(
        model,
        processor,
        args.out,
        images=args.images,
        dataset=args.dataset,
        scene=args.scene,
        stac=args.stac,
        split=args.split,
        recursive=args.recursive,
        tile_size=args.tile_size,
        stride=args.stride,
        bands=scene_bands,
        bbox=args.bbox,
        datetime=args.datetime,
        max_cloud=args.max_cloud,
        assets=args.assets.split(",") if args.assets else None,
        asset=args.asset,
        index=config,
        batch_size=args.batch_size,
        strict=args.strict,
        overwrite=args.overwrite,
        engine=args.engine,
        ray_address=args.ray_address,
        num_gpus_per_worker=args.num_gpus_per_worker,
        ray_workers=args.ray_workers,
        embedding_dtype=args.embedding_dtype,
    )
    if int(os.environ.get("RANK", "0")) == 0:
        _print_summary(index)
    return 0


def _print_summary(index) -> None:
    manifest = index.manifest
    stats = manifest["build"]
    print(
        f"{index.folder}: {manifest['count']} {ROW_NAMES.get(manifest['source']['kind'], 'rows')}, "
        f"{manifest['vector_index']['kind']} index, "
        f"{'two-stage' if manifest['two_stage'] else 'one-stage'} search; last build encoded {stats['encoded']}, "
        f"reused {stats['reused']}, skipped {stats['skipped']} unreadable"
        f"{', ' + str(stats['nodata']) + ' nodata tiles' if stats.get('nodata') else ''} ({_engine(stats)})"
    )
    for line in manifest["skipped"][:20]:
        print(f"  skipped {line}", file=sys.stderr)


def _engine(stats: dict) -> str:
    if stats.get("engine") == "ray":
        return f"Ray, {stats['workers']} worker(s)"
    return f"{stats['processes']} process(es)"


def search(args: argparse.Namespace) -> int:
    from ..imagery import read_image
    from ..index.retrieval import IndexQueryError, RetrievalIndex

    if (args.query is None) == (args.image is None):
        raise IndexQueryError("give either a text query or --image PATH")
    index = RetrievalIndex.open(args.index, model=args.model, verify=not args.no_verify)
    query = read_image(args.image) if args.image else args.query  # any format the package reads (16-bit TIFF too)
    hits = index.search(query, k=args.top_k, candidates=args.candidates, bbox=args.bbox, datetime=args.datetime)
    if index.is_scene and not index.manifest["source"]["georeferenced"]:
        print("note: the scene has no CRS; bounds are pixel coordinates (col, row)")
    print(f"{'rank':>4}  {'score':>9}  {'path' if index.manifest['source']['kind'] == 'files' else 'tile'}")
    for hit in hits:
        if hit.path is not None:
            where = hit.path
        elif hit.geometry is not None:  # a row of embedding parts
            where = f"{hit.tile_id}  {hit.datetime or ''}  bbox={hit.bounds_wgs84}"
        else:
            where = f"{hit.tile_id}  bounds={hit.bounds}  {hit.crs or ''}"
        print(f"{hit.rank:>4}  {hit.score:9.4f}  {where}")
    if not hits:
        print("no hits: nothing in the index satisfies the filter")
    title = args.query or f"image {Path(args.image).name}"
    if args.geojson:
        from ..fileio import write_json_atomic

        write_json_atomic(args.geojson, index.to_geojson(hits))
        print(f"geojson: {args.geojson}")
    if args.geoparquet:
        from ..index.geo import hits_to_geoparquet

        print(f"geoparquet: {hits_to_geoparquet(hits, args.geoparquet)}")
    if args.picture:
        print(f"picture: {index.draw(hits, args.picture, query=title)}")
    return 0


def info(args: argparse.Namespace) -> int:
    from ..index.retrieval import RetrievalIndex

    index = RetrievalIndex.open(args.index, verify=True)
    _print_summary(index)
    print(
        json.dumps({key: index.manifest[key] for key in ("fingerprint", "model", "source", "vector_index")}, indent=2)
    )
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "index", help="vector index over image archives and GeoTIFF scenes", description=__doc__
    )
    commands = parser.add_subparsers(dest="index_command", required=True)

    build_parser = commands.add_parser(
        "build", help="encode images, a dataset split or a scene into an index (incremental, resumable)"
    )
    source = build_parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", help="folder of images")
    source.add_argument("--dataset", help="dataset name (e.g. rs_synth) whose split images are indexed")
    source.add_argument("--scene", help="GeoTIFF / COG (any GDAL raster) tiled into windows")
    source.add_argument(
        "--stac",
        help="STAC catalog / collection / ItemCollection JSON or stac-geoparquet file; its items' COGs are tiled",
    )
    source.add_argument(
        "--parts", help="folder of embedding parts (part-*.parquet) that --model encoded: indexed without encoding"
    )
    build_parser.add_argument(
        "--out", required=True, help="index folder (an existing index of the same model is updated)"
    )
    add_model_arguments(build_parser)
    build_parser.add_argument("--split", default="test", help="dataset split (default: test)")
    build_parser.add_argument("--recursive", action="store_true", help="include images in sub-folders")
    build_parser.add_argument("--tile-size", type=int, default=256, help="scene tile size in pixels (default: 256)")
    build_parser.add_argument(
        "--stride", type=int, default=None, help="scene tile stride (default: tile size, no overlap)"
    )
    add_band_argument(build_parser, "bands read from scenes and multi-band files (3 = RGB, 1 = grey)")
    stac = build_parser.add_argument_group("STAC items (--stac)")
    stac.add_argument("--bbox", help="keep items intersecting W,S,E,N (degrees)")
    stac.add_argument("--datetime", help="keep items in START/END (dates or RFC 3339 times; '..' = open)")
    stac.add_argument("--max-cloud", type=float, default=None, help="keep items with eo:cloud_cover <= PCT")
    bands = stac.add_mutually_exclusive_group()
    bands.add_argument("--assets", help="single-band assets read as R,G,B (e.g. B04,B03,B02) or one grey band")
    bands.add_argument("--asset", help="one multi-band asset (default: visual)")
    engine = build_parser.add_argument_group("engine")
    engine.add_argument(
        "--engine",
        default="local",
        choices=["local", "ray"],
        help="local: this machine (accelerate for N processes); ray: a Ray Data job",
    )
    engine.add_argument(
        "--ray-address", default=None, help="existing Ray cluster (default: start one on this machine, loopback only)"
    )
    engine.add_argument(
        "--num-gpus-per-worker", type=float, default=0.0, help="GPUs per Ray encoder actor (0: CPU actors)"
    )
    engine.add_argument(
        "--ray-workers",
        type=int,
        default=None,
        help="Ray encoder actors (default: from the cluster's GPUs or half its CPUs)",
    )
    build_parser.add_argument(
        "--embedding-dtype",
        default="float32",
        choices=["float32", "float16"],
        help="dtype of the vectors in embeddings/part-*.parquet",
    )
    build_parser.add_argument(
        "--kind",
        default="auto",
        choices=["auto", "flat", "ivfpq", "hnsw", "ivf-ondisk"],
        help="vector index (auto: flat below 1M vectors; ivf-ondisk: IVF-PQ built out of core from --parts)",
    )
    build_parser.add_argument("--nlist", type=int, default=None, help="IVF lists (default ~4 sqrt(N))")
    build_parser.add_argument("--pq-m", type=int, default=None, help="PQ bytes per vector (default dim/8)")
    build_parser.add_argument("--nprobe", type=int, default=32, help="IVF lists searched per query")
    build_parser.add_argument("--ef-search", type=int, default=128, help="HNSW search breadth")
    build_parser.add_argument(
        "--train-size",
        type=int,
        default=100_000,
        help="IVF training sample (lists are capped at size/39; 2 KB of memory per 512-d row)",
    )
    build_parser.add_argument(
        "--refine-dtype",
        default="float16",
        choices=["float16", "float32"],
        help="ivf-ondisk: re-scoring vectors on disk",
    )
    build_parser.add_argument("--batch-size", type=int, default=32)
    build_parser.add_argument(
        "--strict", action="store_true", help="fail on the first unreadable file instead of skipping it"
    )
    build_parser.add_argument(
        "--overwrite", action="store_true", help="rebuild an index that was made with a different model"
    )
    build_parser.set_defaults(func=build)

    search_parser = commands.add_parser("search", help="query an index with text or an image")
    search_parser.add_argument("index", help="index folder")
    search_parser.add_argument("query", nargs="?", help="text query")
    search_parser.add_argument("--image", help="image file as the query (finds similar images / tiles)")
    search_parser.add_argument("-k", "--top-k", type=int, default=20)
    search_parser.add_argument(
        "--candidates",
        type=int,
        default=None,
        help="K': first-stage candidates re-ranked by two-stage models (default 10 k)",
    )
    search_parser.add_argument("--model", default=None, help="model (default: the one recorded in the index)")
    search_parser.add_argument("--bbox", help="only tiles whose footprint intersects W,S,E,N (WGS84 degrees)")
    search_parser.add_argument(
        "--datetime", help="only tiles dated in START/END (RFC 3339; '..' = open end; a bare date = its whole day)"
    )
    search_parser.add_argument("--geojson", help="write the hits' tile footprints as GeoJSON (RFC 7946, WGS84) here")
    search_parser.add_argument(
        "--geoparquet", help="write the hits (score, id, datetime, footprint) as GeoParquet here"
    )
    search_parser.add_argument("--picture", help="write a PNG: the scene with the hits outlined, or a contact sheet")
    search_parser.add_argument("--no-verify", action="store_true", help="skip checking the index files' checksums")
    search_parser.set_defaults(func=search)

    info_parser = commands.add_parser("info", help="verify an index and print its manifest summary")
    info_parser.add_argument("index")
    info_parser.set_defaults(func=info)
