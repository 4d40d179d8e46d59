"""Quick Start, Option 1 of the seed README, as written: a pre-trained Qwen3-Reranker, no training.

    python examples/quickstart_option1.py [MODEL]

MODEL defaults to the seed's "Qwen/Qwen3-Reranker-0.6B" (Hub id); pass a local folder or .gguf file offline.
"""

import sys

from mlx_cross_encoder import TriBridMLXReranker

MODEL = sys.argv[1] if len(sys.argv) > 1 else "Qwen/Qwen3-Reranker-0.6B"

reranker = TriBridMLXReranker(
    reranker_type="qwen3",
    model_name=MODEL,
)

results = reranker.rerank(
    query="authentication token exchange flow",
    documents=[
        "OAuth2 PKCE flow exchanges authorization code for access token",
        "CSS grid layout provides two-dimensional positioning",
        "JWT tokens are signed with HMAC-SHA256 for API auth",
    ],
    top_n=2,
)

for r in results:
    print(f"  [{r['score']:.4f}] {r['document'][:80]}")
