"""Inputs of the ``suites/tribrid-loop/suite.yaml`` harness run, from a ``benchmarks/tribrid_e2e.py`` output folder.

``tribrid_e2e.py`` simulates a TriBridRAG query log from TREC DL 2019 + 2021, mines it, trains LoRA adapters on
SmolLM2-135M and promotes one by TriBridRAG's rule (see docs/tribrid.md). This script takes its outputs into
``--out`` (default ``results/tribrid-inputs.train``, git-ignored: the corpus holds MS MARCO passages, which stay
out of the repository) for the harness suite:

* ``triplets.jsonl``: the TriBridRAG miner's triplets (corpus-relative paths), as TriBridRAG writes them;
* ``corpus/``: the passages those paths name;
* ``promoted/``: the promoted adapter folder in TriBridRAG's ``mlx_qwen3`` format (``adapter.npz`` + config +
  manifest), as the loop left it at the active path;
* ``promoted-fused/``: that adapter merged into the harness's ``local:smollm2-135m-instruct`` checkpoint
  (``fuse_tribrid_adapter``), which both harness backends load. The script checks that the fused checkpoint
  scores as the base GGUF + the artifact loaded by ``Qwen3Reranker`` (the e2e run's own scoring) and records
  the largest difference;
* ``provenance.json``: sha256 of every input, the e2e run's arguments and that difference.

    python benchmarks/tribrid_loop.py --e2e <tribrid_e2e.py --out folder> [--out results/tribrid-inputs.train]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def copy_fresh(src: Path, dst: Path) -> None:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)


def check_fused(fused: Path, promoted: Path, triplets: list[dict], corpus: Path, max_length: int) -> float:
    """Largest |score difference| between the fused checkpoint and the base GGUF + artifact on 16 pairs."""
    from mlx_cross_encoder import Qwen3Reranker

    manifest = json.loads((promoted / "tribrid_reranker_manifest.json").read_text())
    pairs = []
    for t in triplets[:8]:
        for key in ("positive", "negative"):
            pairs.append((t["query"], (corpus / t[key]).read_text(errors="ignore")[:2000].strip()))
    got = Qwen3Reranker(fused, max_length=max_length).predict(pairs)
    ref = Qwen3Reranker(manifest["base_model"], max_length=max_length, adapter_path=promoted).predict(pairs)
    return float(np.abs(np.asarray(got) - np.asarray(ref)).max())


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--e2e", required=True, type=Path, help="the --out folder of benchmarks/tribrid_e2e.py")
    p.add_argument("--out", type=Path, default=REPO / "results" / "tribrid-inputs.train")
    args = p.parse_args(argv)
    from harness.localmodels import resolve_model
    from mlx_cross_encoder.tribrid.adapters import fuse_tribrid_adapter

    e2e, out = args.e2e, args.out
    for need in ("summary.json", "triplets_tribrid.jsonl", "corpus", "active/adapter.npz"):
        if not (e2e / need).exists():
            raise SystemExit(f"{e2e / need} is missing: run benchmarks/tribrid_e2e.py --out {e2e} first")
    summary = json.loads((e2e / "summary.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(e2e / "triplets_tribrid.jsonl", out / "triplets.jsonl")
    copy_fresh(e2e / "corpus", out / "corpus")
    copy_fresh(e2e / "active", out / "promoted")
    base = Path(resolve_model("local:smollm2-135m-instruct"))
    fused = fuse_tribrid_adapter(out / "promoted", base, out / "promoted-fused")
    triplets = [json.loads(line) for line in (out / "triplets.jsonl").read_text().splitlines() if line.strip()]
    max_length = int(summary["args"]["max_length"])
    diff = check_fused(fused, out / "promoted", triplets, out / "corpus", max_length)
    provenance = {
        "e2e_args": summary["args"],
        "e2e_promotion": {miner: summary[miner]["promotion"] for miner in ("tribrid", "improved") if miner in summary},
        "triplets": {"file": "triplets.jsonl", "sha256": sha256(out / "triplets.jsonl"), "lines": len(triplets)},
        "promoted": {
            name: sha256(out / "promoted" / name)
            for name in ("adapter.npz", "adapter_config.json", "tribrid_reranker_manifest.json")
        },
        "fused_base": "local:smollm2-135m-instruct",
        "fused_vs_artifact_max_abs_diff": diff,
        "check_pairs": 16,
        "check_max_length": max_length,
    }
    (out / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
    print(json.dumps(provenance, indent=2))


if __name__ == "__main__":
    main()
