"""MLX rerankers: BERT-family cross-encoders and LLM yes/no rerankers, for inference and training.

Importing this package loads no MLX and changes no environment variable: the public names are imported on first
use (PEP 562). On Linux, the optimized BLAS for MLX's CPU backend is loaded right before ``mlx.core`` is first
imported (see ``_blas``), so import this package before MLX.
"""

from __future__ import annotations

from ._blas import install_import_hook
from ._lazy import lazy_exports

install_import_hook()

#: public name -> the module that defines it
_EXPORTS = {
    "MLXCrossEncoder": "cross_encoder",
    "ModelLoadError": "errors",
    "UnsupportedArchitectureError": "errors",
    "Qwen3Reranker": "llm_reranker",
    "load_reranker": "llm_reranker",
    "RerankTemplate": "llm_template",
    "MLXCrossEncoderConfig": "training",
    "MLXCrossEncoderTrainer": "training",
    "Qwen3RerankerConfig": "training",
    "Qwen3RerankerTrainer": "training",
    "TriBridMLXReranker": "tribrid.reranker",
    "MLXEmbedder": "embedder",
    "MLXBiEncoderReranker": "embedder",
}

__all__ = sorted(_EXPORTS)
__version__ = "0.1.0"


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
