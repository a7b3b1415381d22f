"""Archive-scale search: a faiss vector index over encoded images or scene tiles.

    from rs_retrieval.index import RetrievalIndex
    index = RetrievalIndex.build(model, processor, "port.index", scene="port.tif", tile_size=256)
    hits = index.search("storage tanks", k=20)
    geojson = index.to_geojson(hits)

STAC catalogs of COGs (`stac=`, filtered by bbox, datetime and cloud cover), the Ray engine
(`engine="ray"`) and the GeoParquet embeddings every build writes: docs/archive-search.md.
"""

from .._lazy import lazy_exports

_EXPORTS = {
    ".geoparquet": ["EmbeddingPartsError", "read_embedding_parts"],
    ".ray_engine": ["RayEngineError"],
    ".retrieval": ["IndexBuildError", "IndexQueryError", "RetrievalIndex", "SearchHit"],
    ".sources": ["SceneError", "UnreadableItemError"],
    ".stac": ["StacError"],
    ".store": ["FingerprintMismatchError", "IndexCorruptError", "IndexFolderError"],
    ".vectors": ["VectorIndexConfig", "VectorIndexError"],
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "EmbeddingPartsError", "FingerprintMismatchError", "IndexBuildError", "IndexCorruptError", "IndexFolderError", "IndexQueryError",
    "RayEngineError", "RetrievalIndex", "SceneError", "SearchHit", "StacError", "UnreadableItemError", "VectorIndexConfig",
    "VectorIndexError", "read_embedding_parts",
]
