"""TriBridRAG integration: the seed's ``TriBridMLXReranker`` API, TriBridRAG's query log / triplet formats,
its miners, its ``mlx_qwen3`` adapter format and its promotion rule (see docs/tribrid.md).

Names load on first use (no MLX at import).
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "TriBridMLXReranker": "reranker",
    "RerankerSettings": "settings",
    "settings_from_env": "settings",
    "read_query_log": "querylog",
    "read_triplets": "querylog",
    "write_triplets": "querylog",
    "mine": "mining",
    "mine_tribrid": "mining",
    "mine_improved": "mining",
    "materialize": "corpus",
    "triplets_to_pairs": "corpus",
    "export_tribrid_adapter": "adapters",
    "convert_tribrid_adapter": "adapters",
    "promote": "promote",
}
__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
