"""Teacher scores for distillation, computed once: ``python -m harness.train.teacher SUITE OUTPUT.run``.

Scores every candidate of every judged query of the suite's ``train.data`` candidate lists (training and dev
queries alike; the suite's held-out check runs first, so no query of an evaluated dataset is ever scored) with a
bi-encoder (default ``local:all-minilm-l6-v2``: the real all-MiniLM-L6-v2, mean pooling, normalized) through
``mlx_cross_encoder.MLXBiEncoderReranker`` (cosine similarity; each distinct text encoded once), and writes a TREC
run (``qid Q0 docid rank score tag``, ranks by score per query) that the suite names as ``train.teacher``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import mlx_cross_encoder  # noqa: F401  (the optimized BLAS before mlx.core)

DEFAULT_TEACHER = "local:all-minilm-l6-v2"


def teacher_run(
    suite_path: str | Path, model: str = DEFAULT_TEACHER, batch_size: int = 64, max_queries: int | None = None
):
    """``(run, info)``: qid -> docid -> teacher score for the suite's training candidates, and what was scored."""
    import yaml

    from mlx_cross_encoder.embedder import MLXBiEncoderReranker

    from ..backends import resolve_model_dir
    from ..suite import suite_from_dict
    from .data import build_training_data, check_held_out

    path = Path(suite_path)
    raw = yaml.safe_load(path.read_text())
    if not isinstance(raw, dict) or not isinstance(raw.get("train"), dict):
        raise SystemExit(f"{suite_path}: the suite has no train: section")
    raw["train"].pop("teacher", None)  # the run this computes (it may not exist yet), and the recipes that need it
    raw["train"].pop("recipe", None)
    for m in raw["train"].get("models") or []:
        if isinstance(m, dict):
            m.pop("recipe", None)
    suite = suite_from_dict(raw, path.parent, source=str(path))
    data = build_training_data(suite.train, unjudged=True)
    check_held_out(data, suite.datasets, str(suite_path))
    keys = data.train_keys[:max_queries] if max_queries else None  # a dry run: the first N training queries
    pairs = [p for p in data.pairs if p.qid and p.docid and (keys is None or p.query_key in set(keys))]
    model_dir = resolve_model_dir(model)
    tic = time.perf_counter()
    scores = MLXBiEncoderReranker(model_dir).predict([(p.query, p.document) for p in pairs], batch_size=batch_size)
    run: dict[str, dict[str, float]] = {}
    for p, s in zip(pairs, scores):
        run.setdefault(p.qid, {})[p.docid] = float(s)
    info = {"model": model, "model_dir": str(model_dir), "pairs": len(pairs), "queries": len(run)}
    info["seconds"] = round(time.perf_counter() - tic, 2)
    return run, info


def write_run(run: dict[str, dict[str, float]], path: str | Path, tag: str) -> None:
    lines = []
    for qid in sorted(run):
        ranked = sorted(run[qid].items(), key=lambda kv: (-kv[1], kv[0]))
        lines += [f"{qid} Q0 {d} {r} {s:.7f} {tag}" for r, (d, s) in enumerate(ranked, 1)]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness.train.teacher", description=__doc__.split("\n\n")[0])
    ap.add_argument("suite", help="a suite with a train: section")
    ap.add_argument("output", help="the TREC run to write (the suite's train.teacher)")
    ap.add_argument("--model", default=DEFAULT_TEACHER, help=f"bi-encoder folder or local:<name> ({DEFAULT_TEACHER})")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-queries", type=int, default=None, help="only the first N training queries (a dry run)")
    a = ap.parse_args(argv)
    run, info = teacher_run(a.suite, a.model, a.batch_size, a.max_queries)
    write_run(run, a.output, tag=a.model.replace(":", "_").replace("/", "_"))
    print(
        f"teacher {info['model']}: {info['pairs']} pairs of {info['queries']} queries in {info['seconds']} s -> {a.output}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
