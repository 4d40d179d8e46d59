"""MLX rerankers: BERT-family cross-encoders and LLM yes/no rerankers, for inference and training.

On Linux, importing this package first loads an optimized BLAS for MLX's CPU backend (see ``_blas``).
"""

from ._blas import load_optimized_blas

load_optimized_blas()

from .cross_encoder import MLXCrossEncoder  # noqa: E402
from .errors import ModelLoadError, UnsupportedArchitectureError  # noqa: E402
from .llm_reranker import Qwen3Reranker, RerankTemplate, load_reranker  # noqa: E402
from .training import (  # noqa: E402
    MLXCrossEncoderConfig,
    MLXCrossEncoderTrainer,
    Qwen3RerankerConfig,
    Qwen3RerankerTrainer,
)

__all__ = [
    "MLXCrossEncoder",
    "MLXCrossEncoderConfig",
    "MLXCrossEncoderTrainer",
    "ModelLoadError",
    "Qwen3Reranker",
    "Qwen3RerankerConfig",
    "Qwen3RerankerTrainer",
    "RerankTemplate",
    "UnsupportedArchitectureError",
    "load_reranker",
]
__version__ = "0.1.0"
