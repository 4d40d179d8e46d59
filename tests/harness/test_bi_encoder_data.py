"""InfoNCE examples from candidate lists + qrels: positives judged relevant, hard negatives judged non-relevant
(never unjudged), dev queries held out, keys per list."""

from __future__ import annotations

import json

from harness.train.bi_encoder_data import infonce_examples


def write_list(folder, name, queries):
    hits = [
        {
            "query": q,
            "hits": [
                {"qid": qid, "docid": d, "content": f"text {d}", "rank": r + 1, "score": 10.0 - r}
                for r, d in enumerate(docs)
            ],
        }
        for qid, (q, docs) in queries.items()
    ]
    (folder / f"{name}.json").write_text(json.dumps(hits))
    return folder / f"{name}.json"


def test_examples_take_judged_negatives_only_and_hold_dev_queries_out(tmp_path):
    queries = {f"{i}": (f"query {i}", [f"d{i}-{j}" for j in range(6)]) for i in range(10)}
    candidates = write_list(tmp_path, "a", queries)
    lines = []
    for i in range(10):  # d-0 relevant (3), d-1 grade 1, d-2 and d-4 judged 0, d-3 and d-5 unjudged
        lines += [f"{i} 0 d{i}-0 3", f"{i} 0 d{i}-1 1", f"{i} 0 d{i}-2 0", f"{i} 0 d{i}-4 0"]
    lines += ["3 0 d3-5 2"]  # a second positive for query 3
    (tmp_path / "qrels.txt").write_text("\n".join(lines) + "\n")
    examples, dev = infonce_examples({"a": (candidates, tmp_path / "qrels.txt")}, negatives=1, dev_fraction=0.2)
    assert len(dev) == 2 and all(k.startswith("a:") for k in dev)
    assert {e.qid for e in examples}.isdisjoint(dev) and len({e.qid for e in examples}) == 8
    for e in examples:
        i = e.qid.split(":")[1]
        assert e.positive in (f"text d{i}-0", f"text d{i}-5")
        assert e.negatives[0] in (f"text d{i}-2", f"text d{i}-4")  # judged 0; never d-1 (grade 1) or unjudged
    assert "a:3" not in dev  # (the seeded split) its two positives get different (round-robin) hard negatives
    assert sorted(e.negatives[0] for e in examples if e.qid == "a:3") == ["text d3-2", "text d3-4"]
    assert len(infonce_examples({"a": (candidates, tmp_path / "qrels.txt")}, max_examples=3)[0]) == 3
