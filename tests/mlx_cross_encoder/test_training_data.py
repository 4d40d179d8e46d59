"""Record formats: pairs, triplets, FlagEmbedding groups; clear errors; deterministic batches."""

import json
from pathlib import Path

import pytest

from mlx_cross_encoder.training.data import Batcher, DataFormatError, eval_rankings, load_groups, merge_by_query


def test_pair_triplet_and_group_records():
    groups = load_groups(
        [
            {"query": "q1", "document": "d1", "label": 1},
            {"query": "q2", "positive": "p", "negative": "n"},
            {"query": "q3", "pos": ["a", "b"], "neg": ["c"], "pos_scores": [3, 2.5], "neg_scores": [-1]},
        ]
    )
    assert [(g.documents, g.labels, g.teacher) for g in groups] == [
        (["d1"], [1.0], None),
        (["p", "n"], [1.0, 0.0], None),
        (["a", "b", "c"], [1.0, 1.0, 0.0], [3.0, 2.5, -1.0]),
    ]


def test_triplet_becomes_two_labeled_pairs_for_pointwise_losses():
    batcher = Batcher(load_groups([{"query": "q", "positive": "p", "negative": "n"}]), "bce", batch_size=4)
    (batch,) = list(batcher.batches(0))
    assert sorted(zip(batch.pairs, batch.labels.tolist())) == [(("q", "n"), 0.0), (("q", "p"), 1.0)]


@pytest.mark.parametrize(
    "record, message",
    [
        ({"document": "d", "label": 1}, r"record 1: missing field 'query'"),
        ({"query": "q", "document": "d"}, r"record 1: pair record is missing field 'label'"),
        ({"query": "q", "document": "d", "label": "yes"}, r"record 1: field 'label' must be a finite number"),
        ({"query": "q", "document": "d", "label": 2}, r"record 1: field 'label' must be in \[0, 1\]"),
        ({"query": "q", "document": "  ", "label": 1}, r"record 1: field 'document' is an empty string"),
        ({"query": "q", "positive": "p"}, r"record 1: triplet record is missing field 'negative'"),
        ({"query": "q", "pos": "p", "neg": []}, r"record 1: field 'pos' must be a list of strings"),
        ({"query": "q", "pos": [], "neg": ["n"]}, r"record 1: field 'pos' is an empty list"),
        ({"query": "q", "pos": ["p"], "neg": ["n", 3]}, r"record 1: field 'neg'\[1\] must be a non-empty string"),
        (
            {"query": "q", "pos": ["p"], "neg": ["n"], "pos_scores": [1, 2], "neg_scores": [0]},
            r"record 1: field 'pos_scores' must be a list of 1 numbers",
        ),
        ({"query": "q", "pos": ["p"], "neg": ["n"], "pos_scores": [1]}, r"record 1: give both 'pos_scores'"),
        ({"query": "q", "text": "x"}, r"record 1: cannot tell the record's shape"),
        ("q\td\t1", r"record 1: must be a JSON object"),
    ],
)
def test_malformed_records_name_record_and_field(record, message):
    with pytest.raises(DataFormatError, match=message):
        load_groups([{"query": "ok", "document": "fine", "label": 0}, record])


def test_jsonl_errors_name_the_line(tmp_path):
    f = tmp_path / "train.jsonl"
    f.write_text(json.dumps({"query": "q", "document": "d", "label": 1}) + "\n\n{not json}\n")
    with pytest.raises(DataFormatError, match=r"line 3 of .*train.jsonl: not valid JSON"):
        load_groups(f)
    f.write_text(json.dumps({"query": "q", "document": "d", "label": 1}) + "\n" + json.dumps({"query": "q"}) + "\n")
    with pytest.raises(DataFormatError, match=r"line 2 of train.jsonl: cannot tell"):
        load_groups(f)


def test_losses_check_what_they_need():
    pairs = load_groups([{"query": "q", "document": "d", "label": 1}])
    with pytest.raises(DataFormatError, match="needs teacher scores"):
        Batcher(pairs, "mse", 2)
    with pytest.raises(DataFormatError, match="at least one positive and one negative"):
        Batcher(pairs, "listwise", 2, group_size=2)
    with pytest.raises(DataFormatError, match="needs teacher scores"):
        Batcher(load_groups([{"query": "q", "pos": ["p"], "neg": ["n"]}]), "margin_mse", 2, group_size=2)


def test_pairs_of_one_query_merge_into_a_group_for_listwise():
    groups = load_groups([{"query": "q", "document": f"d{i}", "label": int(i == 2)} for i in range(4)])
    (merged,) = merge_by_query(groups)
    assert merged.documents == ["d0", "d1", "d2", "d3"] and merged.positives == [2]
    batch = next(Batcher(groups, "listwise", batch_size=1, group_size=3).batches(0))
    assert batch.pairs[0] == ("q", "d2") and batch.labels.tolist() == [1.0, 0.0, 0.0]
    assert len({d for _, d in batch.pairs}) == 3  # enough negatives: sampled without replacement


def test_batches_depend_only_on_seed_and_epoch():
    groups = load_groups([{"query": f"q{i}", "pos": ["p"], "neg": [f"n{j}" for j in range(6)]} for i in range(7)])

    def pairs(seed, epoch):
        return [b.pairs for b in Batcher(groups, "listwise", 3, group_size=4, seed=seed).batches(epoch)]

    assert pairs(1, 0) == pairs(1, 0)
    assert pairs(1, 0) != pairs(1, 1) and pairs(1, 0) != pairs(2, 0)
    sizes = [b.n_examples for b in Batcher(groups, "listwise", 3, group_size=4).batches(0)]
    assert sizes == [3, 3, 1]


def test_eval_rankings_ids_and_grades():
    queries, docs, qrels = eval_rankings(
        [
            {"query": "a", "document": "x", "label": 1},
            {"query": "b", "pos": ["y"], "neg": ["z"]},
            {"query": "a", "document": "w", "label": 0},
        ]
    )
    assert queries == {"q0": "a", "q1": "b"}
    assert docs == {"q0": ["x", "w"], "q1": ["y", "z"]}
    assert qrels == {"q0": {"q0-d0": 1.0, "q0-d1": 0.0}, "q1": {"q1-d0": 1.0, "q1-d1": 0.0}}


def test_training_package_imports_neither_torch_nor_the_harness():
    import ast

    import mlx_cross_encoder.training as training

    banned = {"torch", "transformers", "sentence_transformers", "peft", "harness"}
    for file in Path(training.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(file.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            assert not {n.split(".")[0] for n in names} & banned, f"{file.name} imports {names}"


def test_listwise_kl_groups_are_documents_of_one_query_with_their_teacher_scores():
    from training_helpers import toy_groups

    records = toy_groups(4, 5, teacher=True)
    score = {
        (r["query"], d): s for r in records for d, s in zip(r["pos"] + r["neg"], r["pos_scores"] + r["neg_scores"])
    }
    b = Batcher(load_groups(records), "listwise_kl", batch_size=2, group_size=4, seed=0)
    epoch0 = list(b.batches(0))
    assert len(epoch0) == 2 and sum(x.n_examples for x in epoch0) == 4
    for batch in epoch0:
        for g in range(batch.n_examples):
            pairs = batch.pairs[g * 4 : (g + 1) * 4]
            assert len({q for q, _ in pairs}) == 1 and len({d for _, d in pairs}) == 4  # one query, no repeats
            assert batch.teacher[g * 4 : (g + 1) * 4].tolist() == pytest.approx([score[p] for p in pairs])
    assert [x.pairs for x in b.batches(0)] == [x.pairs for x in epoch0]  # a function of (seed, epoch)
    assert [x.pairs for x in b.batches(1)] != [x.pairs for x in epoch0]
    negatives_only = [{"query": "q", "document": f"doc {i}", "label": 0, "score": float(i)} for i in range(3)]
    assert Batcher(load_groups(negatives_only), "listwise_kl", 1, group_size=3).n_examples == 1  # no positive needed
    with pytest.raises(DataFormatError, match="needs at least one positive"):
        Batcher(load_groups(negatives_only), "listwise", 1, group_size=3)
    with pytest.raises(DataFormatError, match="needs teacher scores"):
        Batcher(load_groups(toy_groups(2, 3)), "listwise_kl", 1, group_size=3)
