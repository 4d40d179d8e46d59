"""TriBridRAG integration: the seed's ``TriBridMLXReranker`` API, TriBridRAG's query log / triplet formats,
its miners, its ``mlx_qwen3`` adapter format and its promotion rule (see docs/tribrid.md).

Names load on first use (no MLX at import).
"""

from __future__ import annotations

import importlib

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


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
