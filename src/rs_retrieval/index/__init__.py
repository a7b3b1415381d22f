"""Archive-scale search: a faiss vector index over encoded images or scene tiles.

    from rs_retrieval.index import RetrievalIndex
    index = RetrievalIndex.build(model, processor, "port.index", scene="port.tif", tile_size=256)
    hits = index.search("storage tanks", k=20)
    geojson = index.to_geojson(hits)
"""

from .retrieval import IndexBuildError, IndexQueryError, RetrievalIndex, SearchHit
from .sources import SceneError, UnreadableItemError
from .store import FingerprintMismatchError, IndexCorruptError, IndexFolderError
from .vectors import VectorIndexConfig, VectorIndexError

__all__ = [
    "FingerprintMismatchError", "IndexBuildError", "IndexCorruptError", "IndexFolderError", "IndexQueryError",
    "RetrievalIndex", "SceneError", "SearchHit", "UnreadableItemError", "VectorIndexConfig", "VectorIndexError",
]
