"""Archive-scale search: a faiss vector index over encoded images or scene tiles.

    from rs_retrieval.index import RetrievalIndex
    index = RetrievalIndex.build(model, processor, "port.index", scene="port.tif", tile_size=256)
    hits = index.search("storage tanks", k=20)
    geojson = index.to_geojson(hits)
"""

from .._lazy import lazy_exports

_EXPORTS = {
    ".retrieval": ["IndexBuildError", "IndexQueryError", "RetrievalIndex", "SearchHit"],
    ".sources": ["SceneError", "UnreadableItemError"],
    ".store": ["FingerprintMismatchError", "IndexCorruptError", "IndexFolderError"],
    ".vectors": ["VectorIndexConfig", "VectorIndexError"],
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "FingerprintMismatchError", "IndexBuildError", "IndexCorruptError", "IndexFolderError", "IndexQueryError",
    "RetrievalIndex", "SceneError", "SearchHit", "UnreadableItemError", "VectorIndexConfig", "VectorIndexError",
]
