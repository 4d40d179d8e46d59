"""The sentence-transformers baseline served the way a Python shop would: a minimal FastAPI app around
``sentence_transformers.CrossEncoder`` in Cohere v2's shape, one ``predict`` per request (no merging of
concurrent requests), one request scored at a time (a lock: two torch predicts on the same cores only slow each
other down). The harness measures it with ``backend: http`` like our server (suites/serve-cpu.yaml).

    python benchmarks/serve_st.py --model DIR [--port 8791] [--batch-size 32] [--max-length N]

Binds 127.0.0.1 only. ``GET /health``; ``POST /v2/rerank`` {query, documents, top_n?} -> {id, results, meta}.
"""

from __future__ import annotations

import argparse
import threading
import uuid

import numpy as np
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel


class Rerank(BaseModel):
    model: str | None = None
    query: str
    documents: list[str]
    top_n: int | None = None
    return_documents: bool = False


def create_app(model_dir: str, batch_size: int, max_length: int | None) -> FastAPI:
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(model_dir, device="cpu", max_length=max_length)
    lock = threading.Lock()
    app = FastAPI(title="sentence-transformers CrossEncoder (baseline)")

    @app.get("/health")
    def health():
        return {"status": "ok"}

    @app.post("/v2/rerank")
    def rerank(req: Rerank):  # a plain def: FastAPI runs it on its thread pool
        with lock:
            scores = np.asarray(model.predict([(req.query, d) for d in req.documents], batch_size=batch_size))
        order = np.argsort(-scores, kind="stable")[: req.top_n or len(req.documents)]
        results = [{"index": int(i), "relevance_score": float(scores[i])} for i in order]
        return {"id": str(uuid.uuid4()), "results": results, "meta": {"api_version": {"version": "2"}}}

    return app


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--port", type=int, default=8791)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=None)
    args = p.parse_args()
    uvicorn.run(
        create_app(args.model, args.batch_size, args.max_length), host="127.0.0.1", port=args.port, log_level="warning"
    )


if __name__ == "__main__":
    main()
