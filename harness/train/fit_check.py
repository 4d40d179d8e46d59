"""How well a trained cross-encoder fits its training queries and its dev queries, next to its teacher (dev/train
only: ``python -m harness.train.fit_check SUITE MODEL_DIR [MODEL_DIR ...] --output FIT.jsonl``).

The question it answers is "what limits the student": a student that ranks its *training* queries' BM25 lists
as well as the teacher does but not its *dev* queries' has learnt the training queries, not the task (too few
training queries); one that falls short on both is under-trained. For the suite's ``train:`` section it builds
the data exactly as ``harness run`` does (:func:`harness.train.data.build_training_data`: dev split by query,
the teacher run attached, held-out check first), keeps the candidates of the ``train.dev.sources`` lists (the BM25
top-100 lists: the test distribution) and reports, for the training queries and for the dev queries separately,
nDCG@10 (graded, unjudged = 0, ``relevant = label_threshold``) of: the first stage's order, the teacher's scores,
and each model (float32; a cross-encoder folder as ``mlx_cross_encoder.MLXCrossEncoder``, a causal LM as the LLM
yes/no reranker ``Qwen3Reranker``: :func:`load_model`; a base model's folder gives its zero-shot fit). No evaluated
(held-out) dataset is read beyond the held-out check's query texts.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import mlx_cross_encoder  # noqa: F401  (the optimized BLAS before mlx.core)

NDCG = "ndcg@10"


def split_lists(suite_path: str | Path) -> dict[str, list]:
    """``{"train": pairs, "dev": pairs}``: the pairs of the dev-source lists (every candidate, teacher attached),
    by the suite's split."""
    from ..suite import load_suite
    from .data import build_training_data, check_held_out

    suite = load_suite(suite_path)
    train = suite.train
    if train is None:
        raise SystemExit(f"{suite_path}: the suite has no train: section")
    data = build_training_data(train, unjudged=True)
    check_held_out(data, suite.datasets, str(suite_path))
    keep = set(train.dev.sources) if train.dev.sources is not None else set(range(len(train.sources)))
    pairs = [p for p in data.pairs if p.source in keep and p.qid and p.docid]
    dev = set(data.dev_keys)
    return {
        "train": [p for p in pairs if p.query_key not in dev],
        "dev": [p for p in pairs if p.query_key in dev],
        "label_threshold": train.label_threshold,
    }


def ndcg(pairs: list, scores: list[float], relevance_level: int) -> tuple[float, int]:
    """(mean nDCG@10, queries) of ``scores`` over the pairs' queries (graded; unjudged pairs count 0)."""
    from ..metrics import evaluate

    qrels: dict[str, dict[str, int]] = {}
    run: dict[str, dict[str, float]] = {}
    for p, s in zip(pairs, scores):
        qrels.setdefault(p.qid, {})[p.docid] = p.grade
        run.setdefault(p.qid, {})[p.docid] = float(s)
    means, _ = evaluate(qrels, run, [NDCG], relevance_level)
    return means[NDCG], len(qrels)


def first_stage_scores(pairs: list) -> list[float]:
    """The lists' own order as scores (a query's first pair is its rank 1)."""
    seen: dict[str, int] = {}
    out = []
    for p in pairs:
        seen[p.qid] = seen.get(p.qid, 0) + 1
        out.append(-float(seen[p.qid]))
    return out


def load_model(model_dir: str, max_length: int):
    """The folder as ``harness run``'s MLX backend scores it, float32 (:func:`harness.backends.load_backend`: a causal
    LM (``*ForCausalLM``: SmolLM2, Qwen3) as the LLM yes/no reranker ``Qwen3Reranker`` with its default prompt (the
    train suite's models give no instruction), anything else as an ``MLXCrossEncoder``)."""
    from ..backends import load_backend
    from ..suite.models import RerankerSpec

    spec = RerankerSpec(name="fit-check", backend="mlx", model=str(model_dir), dtype="float32", max_length=max_length)
    return load_backend(spec, max_length, model_dir)


def fit_report(
    suite_path: str | Path,
    model_dirs: list[str],
    batch_size: int = 128,
    max_queries: int | None = None,
    max_length: int = 256,
) -> dict[str, Any]:
    lists = split_lists(suite_path)
    level = lists["label_threshold"]
    models = {d: load_model(d, max_length) for d in model_dirs}  # once, both splits
    out: dict[str, Any] = {"suite": str(suite_path), "metric": NDCG, "max_length": max_length, "splits": {}}
    for split in ("train", "dev"):
        pairs = lists[split]
        if max_queries:
            keep = set(list(dict.fromkeys(p.qid for p in pairs))[:max_queries])
            pairs = [p for p in pairs if p.qid in keep]
        row: dict[str, Any] = {"pairs": len(pairs)}
        row["first_stage"], row["queries"] = ndcg(pairs, first_stage_scores(pairs), level)
        with_teacher = [p for p in pairs if p.teacher is not None]
        row["teacher"] = ndcg(with_teacher, [p.teacher for p in with_teacher], level)[0] if with_teacher else None
        row["teacher_pairs"] = len(with_teacher)
        row["models"] = {}
        for model_dir, model in models.items():
            tic = time.perf_counter()
            scores = model.predict([(p.query, p.document) for p in pairs], batch_size=batch_size)
            row["models"][model_dir] = {
                NDCG: ndcg(pairs, [float(s) for s in scores], level)[0],
                "seconds": round(time.perf_counter() - tic, 2),
            }
        out["splits"][split] = row
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness.train.fit_check", description=__doc__.split("\n\n")[0])
    ap.add_argument("suite", help="a suite with a train: section")
    ap.add_argument("models", nargs="+", help="model folders: a train block's model_dir, or a base model's folder")
    ap.add_argument("--output", help="write the report here as one JSON line (else stdout); not a results file")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--max-queries", type=int, default=None, help="only the first N queries of each split")
    ap.add_argument("--max-length", type=int, default=256, help="tokens per pair (train-full.yaml's max_length)")
    a = ap.parse_args(argv)
    report = fit_report(a.suite, a.models, a.batch_size, a.max_queries, a.max_length)
    if a.output:
        Path(a.output).write_text(json.dumps(report) + "\n")
    for split, row in report["splits"].items():
        models = ", ".join(f"{Path(m).parent.name}/{Path(m).name} {v[NDCG]:.4f}" for m, v in row["models"].items())
        print(
            f"{split}: {row['queries']} queries, first stage {row['first_stage']:.4f}, teacher {row['teacher']}, {models}"
        )
    if not a.output:
        print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
