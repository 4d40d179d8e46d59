"""The loop through the CLI on a tiny model: mine -> train -> evaluate -> promote (only on improvement)."""

from __future__ import annotations

import json

from builders import qwen3_causal_lm

from mlx_cross_encoder.tribrid.cli import main
from mlx_cross_encoder.tribrid.loop import deterministic_split
from mlx_cross_encoder.tribrid.querylog import read_triplets


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
        "--lora-alpha",
        8,
        "--dev-split",
        0.25,
        "--seed",
        3,
        "--base-model",
        "org/base-model",
    )
    _, dev_split = deterministic_split(read_triplets(tmp_path / "t.jsonl"), 0.25, 3)
    assert (trained["train_triplets"], trained["dev_triplets"]) == (12 - len(dev_split), len(dev_split)) == (9, 3)
    assert (trained["settings"]["lora_alpha"], trained["settings"]["seed"]) == (8.0, 3)
    model = tmp_path / "run1" / "model"
    assert (model / "adapter.npz").is_file() and (model / "tribrid_reranker_manifest.json").is_file()
    assert json.loads((model / "tribrid_reranker_manifest.json").read_text())["base_model"] == "org/base-model"
    dev = tmp_path / "run1" / "dev_triplets.jsonl"
    assert read_triplets(dev) == dev_split
    metrics = run(capsys, "evaluate", "--triplets", dev, "--adapter", model, *common)["metrics"]
    assert set(metrics) == {"mrr", "ndcg", "map"}

    active = tmp_path / "active"
    first = run(capsys, "promote", "--candidate", model, "--active", active, "--triplets", dev, *common)
    assert first["decision"]["promoted"] and first["decision"]["baseline"] is None
    assert (active / "adapter.npz").read_bytes() == (model / "adapter.npz").read_bytes()
    again = run(capsys, "promote", "--candidate", model, "--active", active, "--triplets", dev, *common)
    assert not again["decision"]["promoted"]  # the same adapter is not better than itself
    assert again["decision"]["baseline"] == again["decision"]["new"] == metrics["mrr"]
    lenient = run(
        capsys, "promote", "--candidate", model, "--active", active, "--triplets", dev, *common, "--epsilon", -1
    )
    assert lenient["decision"]["promoted"] and lenient["decision"]["epsilon"] == -1  # new > baseline - 1


def test_mine_options_scope_cap_and_append(tmp_path, capsys):
    """`mine --corpus-id` keeps only that corpus's events (the others counted out of scope), `--max-triplets` caps
    what is written, `--mode append` adds to the file instead of replacing it."""
    lines = []
    for i in range(6):
        corpus = "docs" if i < 4 else "other"
        paths = [f"a{i}.md", f"b{i}.md"]
        lines.append({"kind": "search", "event_id": f"e{i}", "query": f"q{i}", "top_paths": paths, "corpus_id": corpus})
        lines.append({"kind": "feedback", "event_id": f"e{i}", "signal": "click", "doc_id": paths[1]})
    log = tmp_path / "queries.jsonl"
    log.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    out = tmp_path / "t.jsonl"

    everything = run(capsys, "mine", "--log", log, "--out", out)
    scoped = run(capsys, "mine", "--log", log, "--out", out, "--corpus-id", "docs")
    assert everything["log"]["out_of_scope"] == 0 and scoped["log"]["out_of_scope"] == 2
    assert scoped["mine"]["triplets"] == 4 < everything["mine"]["triplets"] == 6
    assert len(out.read_text().splitlines()) == 4  # replaced
    capped = run(capsys, "mine", "--log", log, "--out", out, "--max-triplets", 3, "--mode", "append")
    assert capped["mine"]["triplets"] == 3
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(written) == 4 + 3 and [t["query"] for t in written[4:]] == ["q0", "q1", "q2"]


def test_data_options_reach_materialize(tmp_path):
    """evaluate/promote/train read triplet texts with the CLI's --snippet-chars and --chunks (no model is loaded
    here: the texts the commands would score)."""
    from mlx_cross_encoder.cli import build_parser
    from mlx_cross_encoder.tribrid.cli import _texts
    from mlx_cross_encoder.tribrid.querylog import Triplet, write_triplets

    root = tmp_path / "corpus"
    root.mkdir()
    (root / "a.md").write_text("line one alpha\nline two beta\nline three gamma\n")
    (root / "b.md").write_text("other file entirely\n")
    triplets = tmp_path / "t.jsonl"
    write_triplets([Triplet(query="q", positive="a.md:2-3:0", negative="b.md")], triplets)
    parser = build_parser()  # `mlx-cross-encoder tribrid ...`
    common = ["tribrid", "evaluate", "--triplets", str(triplets), "--corpus-root", str(root), "--model", "m"]

    whole, _ = _texts(parser.parse_args([*common, "--chunks"]), triplets)
    assert (whole[0].positive_text, whole[0].negative_text) == (
        "line two beta\nline three gamma",
        "other file entirely",
    )
    cut, _ = _texts(parser.parse_args([*common, "--chunks", "--snippet-chars", "8"]), triplets)
    assert (cut[0].positive_text, cut[0].negative_text) == ("line two", "other fi")
    refused, stats = _texts(parser.parse_args(common), triplets)  # without --chunks a chunk id is no path
    assert refused == [] and stats.triplets_out == 0
