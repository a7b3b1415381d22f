"""Archive-scale search: a faiss vector index over encoded images or scene tiles.

    from rs_retrieval.index import RetrievalIndex
    index = RetrievalIndex.build(model, processor, "port.index", scene="port.tif", tile_size=256)
    hits = index.search("storage tanks", k=20)
    geojson = index.to_geojson(hits)

    # from the embedding parts of a build, out of core, then filtered by place and time
    index = RetrievalIndex.from_parts(model, processor, "archive/embeddings", "archive", index="ivf-ondisk")
    hits = index.search("storage tanks", k=50, bbox="4,45,8,48", datetime="2024-05-01/2024-09-30")

STAC catalogs of COGs (`stac=`, filtered by bbox, datetime and cloud cover), the Ray engine
(`engine="ray"`) and the GeoParquet embeddings every build writes: docs/archive-search.md.
"""

from .._lazy import lazy_exports

_EXPORTS = {
    ".filters": ["FilterError", "SearchFilter"],
    ".geoparquet": ["EmbeddingPartsError", "read_embedding_parts"],
    ".ondisk": ["PartsError", "build_from_parts"],
    ".ray_engine": ["RayEngineError"],
    ".retrieval": ["IndexBuildError", "IndexQueryError", "RetrievalIndex", "SearchHit"],
    ".sources": ["SceneError", "UnreadableItemError"],
    ".stac": ["StacError"],
    ".store": ["FingerprintMismatchError", "IndexCorruptError", "IndexFolderError"],
    ".vectors": ["VectorIndexConfig", "VectorIndexError"],
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "EmbeddingPartsError",
    "FilterError",
    "FingerprintMismatchError",
    "IndexBuildError",
    "IndexCorruptError",
    "IndexFolderError",
    "IndexQueryError",
    "PartsError",
    "RayEngineError",
    "RetrievalIndex",
    "SceneError",
    "SearchFilter",
    "SearchHit",
    "StacError",
    "UnreadableItemError",
    "VectorIndexConfig",
    "VectorIndexError",
    "build_from_parts",
    "read_embedding_parts",
]
