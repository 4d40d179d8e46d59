"""The loop through the CLI on a tiny model: mine -> train -> evaluate -> promote (only on improvement)."""

from __future__ import annotations

import json

from builders import qwen3_causal_lm

from mlx_cross_encoder.tribrid.cli import main


def run(capsys, *argv):
    assert main([str(a) for a in argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_mine_train_evaluate_promote(tmp_path, capsys):
    tiny = qwen3_causal_lm(tmp_path / "tiny", seed=0)
    root = tmp_path / "corpus"
    root.mkdir()
    topics = ["token exchange", "grid layout", "river city", "drug study", "music film", "cat dog"]
    for i, t in enumerate(topics):
        (root / f"d{i}.md").write_text(f"notes about {t} " * 20)
    lines = []
    for i, t in enumerate(topics * 2):
        eid = f"e{i}"
        paths = [f"d{(i + 1) % 6}.md", f"d{i % 6}.md", f"d{(i + 2) % 6}.md"]
        lines.append({"kind": "search", "event_id": eid, "query": f"{t} {i}", "top_paths": paths})
        lines.append({"kind": "feedback", "type": "feedback", "event_id": eid, "signal": "click", "doc_id": paths[1]})
        lines.append({"kind": "feedback", "type": "feedback", "event_id": eid, "signal": "noclick", "doc_id": paths[2]})
    log = tmp_path / "queries.jsonl"
    log.write_text("\n".join(json.dumps(x) for x in lines) + "\n{broken\n")

    mined = run(capsys, "mine", "--log", log, "--out", tmp_path / "t.jsonl")
    assert mined["mine"]["triplets"] == 12 and mined["log"]["malformed_lines"] == 1
    improved = run(
        capsys,
        "mine",
        "--log",
        log,
        "--out",
        tmp_path / "ti.jsonl",
        "--miner",
        "improved",
        "--negatives-per-positive",
        "2",
    )
    assert improved["mine"]["triplets"] == 24

    common = ["--corpus-root", root, "--model", tiny, "--max-length", 128]
    trained = run(
        capsys,
        "train",
        "--triplets",
        tmp_path / "t.jsonl",
        "--output",
        tmp_path / "run1",
        *common,
        "--epochs",
        1,
        "--batch-size",
        4,
        "--learning-rate",
        1e-3,
        "--lora-rank",
        4,
    )
    assert trained["train_triplets"] == 11 and trained["dev_triplets"] == 1
    model = tmp_path / "run1" / "model"
    assert (model / "adapter.npz").is_file() and (model / "tribrid_reranker_manifest.json").is_file()
    dev = tmp_path / "run1" / "dev_triplets.jsonl"
    metrics = run(capsys, "evaluate", "--triplets", dev, "--adapter", model, *common)["metrics"]
    assert set(metrics) == {"mrr", "ndcg", "map"}

    active = tmp_path / "active"
    first = run(capsys, "promote", "--candidate", model, "--active", active, "--triplets", dev, *common)
    assert first["decision"]["promoted"] and first["decision"]["baseline"] is None
    assert (active / "adapter.npz").read_bytes() == (model / "adapter.npz").read_bytes()
    again = run(capsys, "promote", "--candidate", model, "--active", active, "--triplets", dev, *common)
    assert not again["decision"]["promoted"]  # the same adapter is not better than itself
    assert again["decision"]["baseline"] == again["decision"]["new"] == metrics["mrr"]
