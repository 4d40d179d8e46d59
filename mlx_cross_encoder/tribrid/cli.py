"""``tribrid mine | train | evaluate | promote``: TriBridRAG's learning loop with MLX rerankers.

Run as ``python -m mlx_cross_encoder.tribrid.cli <command>``; :func:`add_parser` adds the same group to another
argparse CLI (``mlx-cross-encoder tribrid ...``). Each command prints one JSON object (counts, metrics,
decision) on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .corpus import SNIPPET_CHARS, materialize
from .querylog import read_query_log, read_triplets, write_triplets


def _emit(obj) -> int:
    print(json.dumps(obj, indent=2, default=str))
    return 0


def cmd_mine(args) -> int:
    from .mining import mine

    log = read_query_log(args.log, corpus_id=args.corpus_id)
    options = {"max_triplets": args.max_triplets}
    if args.miner == "improved":
        options["negatives_per_positive"] = args.negatives_per_positive
    triplets, stats = mine(log, args.miner, **options)
    write_triplets(triplets, args.out, mode=args.mode)
    return _emit({"log": log.stats.model_dump(), "mine": stats.model_dump(), "triplets_path": str(args.out)})


def _texts(args, path):
    return materialize(read_triplets(path), args.corpus_root, snippet_chars=args.snippet_chars, chunks=args.chunks)


def cmd_train(args) -> int:
    from .loop import deterministic_split, train_adapter

    triplets = read_triplets(args.triplets)
    train, dev = deterministic_split(triplets, args.dev_split, args.seed)
    out = Path(args.output)
    write_triplets(dev, out / "dev_triplets.jsonl")
    texts, stats = materialize(train, args.corpus_root, snippet_chars=args.snippet_chars, chunks=args.chunks)
    settings = {
        "num_epochs": args.epochs,
        "learning_rate": args.learning_rate,
        "lora_rank": args.lora_rank,
        "lora_alpha": args.lora_alpha,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "seed": args.seed,
    }
    model_dir = train_adapter(texts, args.model, out, base_model=args.base_model, run_id=out.name, **settings)
    record = {
        "model_dir": str(model_dir),
        "train_triplets": len(train),
        "dev_triplets": len(dev),
        "materialize": stats.model_dump(),
        "settings": settings,
    }
    (out / "run.json").write_text(json.dumps(record, indent=2))
    return _emit(record)


def _score(args, adapter, texts) -> dict[str, float]:
    from ..llm_reranker import Qwen3Reranker
    from .loop import evaluate_triplets

    reranker = Qwen3Reranker(args.model, max_length=args.max_length, adapter_path=adapter, check_adapter_base=False)
    return evaluate_triplets(reranker, texts)


def cmd_evaluate(args) -> int:
    texts, stats = _texts(args, args.triplets)
    return _emit({"metrics": _score(args, args.adapter, texts), "materialize": stats.model_dump()})


def cmd_promote(args) -> int:
    from .loop import PRIMARY_METRIC
    from .promote import promote

    texts, stats = _texts(args, args.triplets)
    new = _score(args, args.candidate, texts)[PRIMARY_METRIC]
    active = Path(args.active)
    baseline = _score(args, active, texts)[PRIMARY_METRIC] if (active / "adapter.npz").is_file() else None
    decision = promote(args.candidate, active, new, baseline, args.epsilon)
    return _emit({"decision": decision.model_dump(), "metric": PRIMARY_METRIC, "materialize": stats.model_dump()})


def _data_options(p) -> None:
    p.add_argument("--corpus-root", required=True, help="folder the triplets' corpus-relative paths resolve in")
    p.add_argument("--snippet-chars", type=int, default=SNIPPET_CHARS, help="leading characters of each file")
    p.add_argument("--chunks", action="store_true", help="read chunk ids path:start-end:char as those lines")
    p.add_argument("--model", required=True, help="base model (folder, Hub id or .gguf)")
    p.add_argument("--max-length", type=int, default=256)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``tribrid`` command group to an argparse ``subparsers`` object."""
    group = subparsers.add_parser("tribrid", help="TriBridRAG learning loop: mine, train, evaluate, promote")
    sub = group.add_subparsers(dest="tribrid_command", required=True)
    p = sub.add_parser("mine", help="query log -> triplet JSONL (TriBridRAG's format)")
    p.add_argument("--log", required=True, help="TriBridRAG query log (data/logs/queries.jsonl)")
    p.add_argument("--out", required=True, help="triplet JSONL to write")
    p.add_argument("--miner", choices=("tribrid", "improved"), default="tribrid")
    p.add_argument("--negatives-per-positive", type=int, default=4, help="improved miner only")
    p.add_argument("--corpus-id", default=None)
    p.add_argument("--max-triplets", type=int, default=None)
    p.add_argument("--mode", choices=("replace", "append"), default="replace")
    p.set_defaults(func=cmd_mine)
    p = sub.add_parser("train", help="triplets -> pairs -> MLX LoRA -> TriBridRAG adapter folder <output>/model")
    p.add_argument("--triplets", required=True)
    p.add_argument("--output", required=True)
    _data_options(p)
    p.add_argument("--base-model", default=None, help="base_model written into the artifact (default --model)")
    p.add_argument("--dev-split", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--learning-rate", type=float, default=2e-5)
    p.add_argument("--lora-rank", type=int, default=16)
    p.add_argument("--lora-alpha", type=float, default=32.0)
    p.add_argument("--batch-size", type=int, default=4)
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("evaluate", help="pairwise MRR/nDCG/MAP (TriBridRAG's proxies) on triplets")
    p.add_argument("--triplets", required=True)
    p.add_argument("--adapter", default=None, help="adapter folder (TriBridRAG or mlx-lm format); none = base")
    _data_options(p)
    p.set_defaults(func=cmd_evaluate)
    p = sub.add_parser("promote", help="copy --candidate over --active atomically if new > active + epsilon")
    p.add_argument("--candidate", required=True)
    p.add_argument("--active", required=True)
    p.add_argument("--triplets", required=True, help="dev triplets both adapters are scored on")
    p.add_argument("--epsilon", type=float, default=0.0)
    _data_options(p)
    p.set_defaults(func=cmd_promote)
    return group


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlx_cross_encoder.tribrid.cli", description=__doc__.split("\n")[0])
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["tribrid", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
