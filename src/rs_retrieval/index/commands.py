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

from ..search.commands import add_model_arguments


def build(args: argparse.Namespace) -> int:
    from ..search.commands import load_model_from_args
    from .retrieval import RetrievalIndex
    from .vectors import VectorIndexConfig

    model, processor = load_model_from_args(args)
    config = VectorIndexConfig(kind=args.kind, nlist=args.nlist, pq_m=args.pq_m, nprobe=args.nprobe, ef_search=args.ef_search)
    index = RetrievalIndex.build(
        model, processor, args.out, images=args.images, dataset=args.dataset, scene=args.scene, split=args.split,
        recursive=args.recursive, tile_size=args.tile_size, stride=args.stride, bands=args.bands, index=config,
        batch_size=args.batch_size, strict=args.strict, overwrite=args.overwrite,
    )
    if int(os.environ.get("RANK", "0")) == 0:
        _print_summary(index)
    return 0


def _print_summary(index) -> None:
    manifest = index.manifest
    stats = manifest["build"]
    print(
        f"{index.folder}: {manifest['count']} {'tiles' if index.is_scene else 'images'}, {manifest['vector_index']['kind']} index, "
        f"{'two-stage' if manifest['two_stage'] else 'one-stage'} search; last build encoded {stats['encoded']}, "
        f"reused {stats['reused']}, skipped {stats['skipped']} unreadable ({stats['processes']} process(es))"
    )
    for line in manifest["skipped"][:20]:
        print(f"  skipped {line}", file=sys.stderr)


def search(args: argparse.Namespace) -> int:
    from ..imagery import read_image
    from .retrieval import IndexQueryError, RetrievalIndex

    if (args.query is None) == (args.image is None):
        raise IndexQueryError("give either a text query or --image PATH")
    index = RetrievalIndex.open(args.index, model=args.model, verify=not args.no_verify)
    query = read_image(args.image) if args.image else args.query  # any format the package reads (16-bit TIFF too)
    hits = index.search(query, k=args.top_k, candidates=args.candidates)
    if index.is_scene and not index.manifest["source"]["georeferenced"]:
        print("note: the scene has no CRS; bounds are pixel coordinates (col, row)")
    print(f"{'rank':>4}  {'score':>9}  {'tile' if index.is_scene else 'path'}")
    for hit in hits:
        where = f"{hit.tile_id}  bounds={hit.bounds}  {hit.crs or ''}" if index.is_scene else hit.path
        print(f"{hit.rank:>4}  {hit.score:9.4f}  {where}")
    title = args.query or f"image {Path(args.image).name}"
    if args.geojson:
        from ..fileio import write_json_atomic

        write_json_atomic(args.geojson, index.to_geojson(hits))
        print(f"geojson: {args.geojson}")
    if args.picture:
        print(f"picture: {index.draw(hits, args.picture, query=title)}")
    return 0


def info(args: argparse.Namespace) -> int:
    from .retrieval import RetrievalIndex

    index = RetrievalIndex.open(args.index, verify=True)
    _print_summary(index)
    print(json.dumps({key: index.manifest[key] for key in ("fingerprint", "model", "source", "vector_index")}, indent=2))
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("index", help="vector index over image archives and GeoTIFF scenes", description=__doc__)
    commands = parser.add_subparsers(dest="index_command", required=True)

    build_parser = commands.add_parser("build", help="encode images, a dataset split or a scene into an index (incremental, resumable)")
    source = build_parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", help="folder of images")
    source.add_argument("--dataset", help="dataset name (e.g. rs_synth) whose split images are indexed")
    source.add_argument("--scene", help="GeoTIFF / COG (any GDAL raster) tiled into windows")
    build_parser.add_argument("--out", required=True, help="index folder (an existing index of the same model is updated)")
    add_model_arguments(build_parser)
    build_parser.add_argument("--split", default="test", help="dataset split (default: test)")
    build_parser.add_argument("--recursive", action="store_true", help="include images in sub-folders")
    build_parser.add_argument("--tile-size", type=int, default=256, help="scene tile size in pixels (default: 256)")
    build_parser.add_argument("--stride", type=int, default=None, help="scene tile stride (default: tile size, no overlap)")
    build_parser.add_argument("--bands", type=int, nargs="+", default=None, help="1-based band numbers: 3 (RGB) or 1 (grey)")
    build_parser.add_argument("--kind", default="auto", choices=["auto", "flat", "ivfpq", "hnsw"], help="vector index (auto: flat below 1M vectors)")
    build_parser.add_argument("--nlist", type=int, default=None, help="IVF lists (default ~4 sqrt(N))")
    build_parser.add_argument("--pq-m", type=int, default=None, help="PQ bytes per vector (default dim/8)")
    build_parser.add_argument("--nprobe", type=int, default=32, help="IVF lists searched per query")
    build_parser.add_argument("--ef-search", type=int, default=128, help="HNSW search breadth")
    build_parser.add_argument("--batch-size", type=int, default=32)
    build_parser.add_argument("--strict", action="store_true", help="fail on the first unreadable file instead of skipping it")
    build_parser.add_argument("--overwrite", action="store_true", help="rebuild an index that was made with a different model")
    build_parser.set_defaults(func=build)

    search_parser = commands.add_parser("search", help="query an index with text or an image")
    search_parser.add_argument("index", help="index folder")
    search_parser.add_argument("query", nargs="?", help="text query")
    search_parser.add_argument("--image", help="image file as the query (finds similar images / tiles)")
    search_parser.add_argument("-k", "--top-k", type=int, default=20)
    search_parser.add_argument("--candidates", type=int, default=None, help="K': first-stage candidates re-ranked by two-stage models (default 10 k)")
    search_parser.add_argument("--model", default=None, help="model (default: the one recorded in the index)")
    search_parser.add_argument("--geojson", help="write the hits' tile footprints as GeoJSON here (scene indexes)")
    search_parser.add_argument("--picture", help="write a PNG: the scene with the hits outlined, or a contact sheet")
    search_parser.add_argument("--no-verify", action="store_true", help="skip checking the index files' checksums")
    search_parser.set_defaults(func=search)

    info_parser = commands.add_parser("info", help="verify an index and print its manifest summary")
    info_parser.add_argument("index")
    info_parser.set_defaults(func=info)
