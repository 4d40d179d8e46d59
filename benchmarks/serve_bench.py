"""Closed-loop load on the rerank server: MiniLM-L6 (real encoder weights, seeded untrained head), one query x 50
documents per request, N concurrent asyncio+httpx clients; queries/s and p50/p99 latency, beside in-process rank.

    python benchmarks/serve_bench.py --clients 1 8 32 --seconds 10

The server runs in this process (uvicorn in a thread, 127.0.0.1, free port), as in the tests. Load average is
printed: the box is shared, so numbers are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from harness.localmodels import build_minilm_seeded_head
from mlx_cross_encoder import MLXCrossEncoder
from mlx_cross_encoder.serve import ServeSettings
from mlx_cross_encoder.serve.testing import running_server

QUERY = "how do rerankers score passages for a search query"
DOCS = [
    f"passage {i}: " + " ".join(["retrieval reranking transformer attention index"] * (1 + i % 6)) for i in range(50)
]


async def closed_loop(url: str, clients: int, seconds: float) -> tuple[list[float], float]:
    """Latencies of the requests sent in ``seconds`` (each client sends until then) and the wall time until the
    last one is answered (queries/s divides by that, not by ``seconds``)."""
    latencies: list[float] = []
    stop = time.perf_counter() + seconds

    async def one(http: httpx.AsyncClient):
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            r = await http.post("/v1/rerank", json={"query": QUERY, "documents": DOCS})
            r.raise_for_status()
            latencies.append(time.perf_counter() - t0)

    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        await one(http)  # warm-up request, not counted
        latencies.clear()
        stop = time.perf_counter() + seconds
        t0 = time.perf_counter()
        await asyncio.gather(*(one(http) for _ in range(clients)))
        return latencies, time.perf_counter() - t0


def row(name: str, lat: list[float], wall: float) -> str:
    ms = np.asarray(lat) * 1000
    return (
        f"| {name} | {len(lat)} | {len(lat) / wall:.2f} | {np.percentile(ms, 50):.1f} | "
        f"{np.percentile(ms, 99):.1f} | {os.getloadavg()[0]:.2f} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = build_minilm_seeded_head(Path(tmp) / "minilm")
        model = MLXCrossEncoder(path)
        print("| setup | requests | queries/s | p50 ms | p99 ms | load avg (1 min) |")
        print("|---|---|---|---|---|---|")
        model.rank(QUERY, DOCS)  # warm-up
        lat, t0 = [], time.perf_counter()
        while time.perf_counter() - t0 < args.seconds:
            s = time.perf_counter()
            model.rank(QUERY, DOCS)
            lat.append(time.perf_counter() - s)
        print(row("in-process rank", lat, time.perf_counter() - t0), flush=True)
        with running_server({"minilm": lambda: MLXCrossEncoder(path)}, ServeSettings(max_queue=64)) as url:
            for c in args.clients:
                lat, wall = asyncio.run(closed_loop(url, c, args.seconds))
                print(row(f"server, {c} clients", lat, wall), flush=True)


if __name__ == "__main__":
    main()
