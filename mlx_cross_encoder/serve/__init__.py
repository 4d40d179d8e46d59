"""HTTP rerank server (Cohere v1/v2, Jina and TEI request shapes) over MLX rerankers, with dynamic micro-batching.

``create_app(models, settings)`` builds the FastAPI app; ``mlx-cross-encoder serve`` runs it with uvicorn.
Importing this package loads no MLX and no torch.
"""

from __future__ import annotations

from .app import create_app
from .settings import ServeSettings

__all__ = ["ServeSettings", "create_app"]
