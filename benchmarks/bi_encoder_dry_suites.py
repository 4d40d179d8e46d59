"""Tiny CPU copies of the bi-encoder H200 suites for ``DRY=1 bash benchmarks/gpu_embed.sh`` (a rehearsal of the GPU
script on the CPU box): data paths made absolute (the copies live in a temp folder), at most 10 candidates per
query, torch rerankers on ``cpu``,
the training recipe cut to 1 epoch of batch 8, dev evaluation every 4 updates on 6 documents per dev query.

    python benchmarks/bi_encoder_dry_suites.py OUT_DIR SUITE.yaml...
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

PATH_KEYS = ("candidates", "qrels", "judged_pool", "corpus", "queries")
#: candidates per query in the dry copies (a decoder such as SmolLM2 on the shared CPU box is slow)
DRY_TOP_K = 10


def tiny(suite_path: Path) -> dict:
    suite = yaml.safe_load(suite_path.read_text())

    def absolute(entry: dict) -> dict:
        return {k: str((suite_path.parent / v).resolve()) if k in PATH_KEYS else v for k, v in entry.items()}

    suite["datasets"] = [
        {**absolute(d), "top_k": min(d.get("top_k") or DRY_TOP_K, DRY_TOP_K)} for d in suite["datasets"]
    ]
    for reranker in suite.get("rerankers", []):
        if reranker["backend"] == "torch":
            reranker["device"] = "cpu"
    if "train" in suite:
        suite["train"]["data"] = [absolute(d) for d in suite["train"]["data"]]
        suite["train"]["recipe"].update(epochs=1, batch_size=8, eval_steps=4, dev_max_docs=6, eval_batch_size=32)
    return suite


def main(argv: list[str]) -> int:
    out, *suites = argv
    for path in map(Path, suites):
        (Path(out) / path.name).write_text(yaml.safe_dump(tiny(path), sort_keys=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
