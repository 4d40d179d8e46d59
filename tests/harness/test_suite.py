"""harness.suite: loading, defaults, path resolution and every validation error (message asserted)."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from harness.suite import DatasetSpec, SuiteError, default_relevance_level, load_suite, suite_from_dict

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO / ".." / "shared" / "data" / "trec-dl"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    for name in ("cands.json", "qrels.txt", "run.trec", "corpus.tsv", "queries.tsv"):
        (tmp_path / "data" / name).write_text("x\n")
    beir = tmp_path / "data" / "beir" / "scifact"
    (beir / "qrels").mkdir(parents=True)
    for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
        (beir / name).write_text("x\n")
    (tmp_path / "models" / "mine").mkdir(parents=True)
    return tmp_path


def base_suite() -> dict:
    return {
        "name": "demo",
        "datasets": [
            {"name": "dl19", "candidates": "data/cands.json", "qrels": "data/qrels.txt", "top_k": 50},
            {"name": "scifact", "ir_datasets": "beir/scifact/test", "first_stage": "bm25"},
            {
                "name": "x",
                "run": "data/run.trec",
                "corpus": "data/corpus.tsv",
                "queries": "data/queries.tsv",
                "qrels": "data/qrels.txt",
            },
            {"name": "y", "beir": "data/beir/scifact", "split": "test"},
        ],
        "rerankers": [
            {"name": "m-mlx", "backend": "mlx", "model": "cross-encoder/ms-marco-MiniLM-L-6-v2", "dtype": "float16"},
            {"name": "m-torch", "backend": "torch", "model": "local:minilm-l6-seeded-head"},
            {"name": "mine", "backend": "torch", "model": "./models/mine"},
        ],
        "baseline": "m-torch",
        "metrics": ["ndcg@10", "MRR@10"],
        "measure": {"warmup_queries": 1},
    }


def write(folder: Path, data, name: str = "s.yaml") -> Path:
    path = folder / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def errors_of(folder: Path, data) -> str:
    path = write(folder, data)
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    assert all(line.startswith(f"{path}: ") for line in info.value.errors)  # every line names the file
    return str(info.value)


def test_valid_suite_loads_with_defaults_and_resolved_paths(folder):
    suite = load_suite(write(folder, base_suite()))
    assert suite.name == "demo" and suite.path == folder / "s.yaml"
    dl19, scifact, x, y = suite.datasets
    kinds = [d.source_kind for d in suite.datasets]
    assert kinds == ["candidates", "ir_datasets", "trec_run", "beir"]
    assert dl19.candidates == (folder / "data" / "cands.json").resolve() and dl19.qrels.is_absolute()
    assert dl19.top_k == 50 and scifact.top_k == 100 and dl19.max_queries is None and y.split == "test"
    assert dl19.relevance_level == 2 and scifact.relevance_level == 1  # TREC DL passage name rule vs BEIR
    assert scifact.ir_datasets == "beir/scifact/test" and not dl19.add_judged_positives
    mlx, torch_, mine = suite.rerankers
    assert (mlx.dtype, mlx.batch_size, mlx.device, mlx.max_length, mlx.options) == ("float16", 32, "auto", None, {})
    assert torch_.model == "local:minilm-l6-seeded-head"  # left for harness.localmodels
    assert mine.model == str((folder / "models" / "mine").resolve())
    assert suite.baseline == "m-torch" and suite.metrics == ["ndcg@10", "mrr@10"]
    assert (suite.measure.warmup_queries, suite.measure.repeats, suite.seed, suite.train) == (1, 1, 0, None)
    assert suite.raw["name"] == "demo"


def test_defaults_for_optional_top_level_fields(folder):
    data = base_suite()
    del data["baseline"], data["metrics"], data["measure"]
    suite = suite_from_dict(data, folder)
    assert suite.baseline is None and suite.metrics == ["ndcg@10", "mrr@10", "map@100", "recall@100"]
    assert (suite.measure.warmup_queries, suite.measure.repeats) == (2, 1)
    assert suite.train is None


def test_train_section_is_validated_not_opaque(folder):
    # the train: section is checked like the rest (tests/test_train_suite.py covers it in detail)
    data = base_suite()
    data["train"] = {"anything": [1, 2, {"goes": True}]}
    text = errors_of(folder, data)
    assert "train.anything: unknown key; valid keys: data, label_threshold, dev, teacher, recipe, models" in text
    assert "train.data: missing (required)" in text and "train.models: missing (required)" in text


def test_relevance_level_rule():
    assert default_relevance_level("dl19") == 2
    assert default_relevance_level("trec-dl-2020-passage") == 2
    assert default_relevance_level("bm25_top100_dl21") == 2
    assert default_relevance_level("DL-2019") == 2
    assert default_relevance_level("trec-dl-2019-doc") == 1  # document judgments: level 1
    assert default_relevance_level("handle19") == 1 and default_relevance_level("scifact") == 1
    assert default_relevance_level("whatever", "msmarco-passage/trec-dl-2019/judged") == 2
    assert default_relevance_level("dl19", "msmarco-document/trec-dl-2019") == 1  # the id decides
    assert default_relevance_level("dev", "msmarco-passage/dev/small") == 1
    assert DatasetSpec(name="dl20", source_kind="candidates").resolved_relevance_level() == 2


DEL = object()


def set_path(data: dict, path: str, value) -> None:
    """``set_path(d, "datasets[1].top_k", -3)``; value DEL removes the key; an index one past the end appends."""
    *parents, last = re.findall(r"[^.\[\]]+", path)
    for part in parents:
        data = data[int(part)] if part.isdigit() else data[part]
    key = int(last) if last.isdigit() else last
    if value is DEL:
        del data[key]
    elif isinstance(data, list) and key == len(data):
        data.append(value)
    else:
        data[key] = value


DS0, DS1, DS2, DS3 = (f"datasets[{i}]" for i in range(4))
R0, R1, R2 = (f"rerankers[{i}]" for i in range(3))
POSITIVE = "must be a positive integer"


@pytest.mark.parametrize(
    "path, value, message",
    [
        (f"{DS1}.top_k", -3, f"{DS1}.top_k: {POSITIVE}, got -3"),
        (f"{DS0}.top_k", True, f"{DS0}.top_k: {POSITIVE}, got True"),
        (f"{DS0}.max_queries", "ten", f"{DS0}.max_queries: {POSITIVE} or null, got 'ten'"),
        (f"{DS0}.topk", 5, f"{DS0}.topk: unknown key (did you mean 'top_k'?)"),
        ("rerankerz", [], "rerankerz: unknown key (did you mean 'rerankers'?)"),
        (f"{R0}.batchsize", 4, f"{R0}.batchsize: unknown key (did you mean 'batch_size'?)"),
        (
            "measure.zzz",
            1,
            "measure.zzz: unknown key; valid keys: scenarios, scenario_options, warmup_queries, repeats",
        ),
        ("name", DEL, "name: missing (required)"),
        (f"{R1}.model", DEL, f"{R1}.model: missing (required)"),
        (f"{DS0}.qrels", DEL, f"{DS0}.qrels: missing (required with candidates)"),
        (f"{DS2}.queries", DEL, f"{DS2}.queries: missing (required with run)"),
        (
            f"{DS0}.candidates",
            DEL,
            f"{DS0}: needs exactly one source: candidates, run, beir, ir_datasets or judged_pool",
        ),
        (
            f"{DS3}.ir_datasets",
            "beir/scifact/test",
            f"{DS3}: needs exactly one source: candidates, run, beir, ir_datasets or judged_pool (got beir, ir_datasets)",
        ),
        (f"{DS0}.corpus", "data/corpus.tsv", f"{DS0}.corpus: not used with candidates"),
        (f"{DS1}.qrels", "data/qrels.txt", f"{DS1}.qrels: not used with ir_datasets"),
        (f"{DS0}.split", "dev", f"{DS0}.split: only used with a beir folder (not candidates)"),
        (f"{DS3}.split", "dev", f"{DS3}.beir: BEIR folder"),
        (f"{DS0}.candidates", "data/nope.json", f"{DS0}.candidates: no such file: "),
        (f"{DS3}.beir", "data/nope", f"{DS3}.beir: no such folder: "),
        (
            f"{DS1}.ir_datasets",
            "beir/scifakt/test",
            f"{DS1}.ir_datasets: unknown ir_datasets id 'beir/scifakt/test' (did you mean 'beir/scifact/test'?)",
        ),
        (
            f"{DS3}.first_stage",
            "splade",
            f"{DS3}.first_stage: must be one of bm25 with beir (the harness computes it), got 'splade'",
        ),
        (f"{DS0}.add_judged_positives", True, f"{DS0}.add_judged_positives: needs the documents' text"),
        (f"{DS0}.add_judged_positives", "yes", f"{DS0}.add_judged_positives: must be true or false, got 'yes'"),
        (f"{DS0}.relevance_level", 0, f"{DS0}.relevance_level: {POSITIVE} or null, got 0"),
        (f"{DS2}.name", "dl19", f"{DS2}.name: duplicate name 'dl19' (also datasets[0])"),
        (f"{DS2}.name", "has space", f"{DS2}.name: must be a name of letters"),
        (f"{R2}.name", "m-mlx", f"{R2}.name: duplicate name 'm-mlx' (also rerankers[0])"),
        (f"{R2}.name", "bm25", f"{R2}.name: 'bm25' is also a dataset's first_stage"),
        (f"{R0}.backend", "onnx", f"{R0}.backend: must be one of mlx, torch, http, got 'onnx'"),
        (f"{R0}.dtype", "int3", f"{R0}.dtype: must be one of float32, tf32, float16, bfloat16, got 'int3'"),
        (f"{R0}.batch_size", 0, f"{R0}.batch_size: {POSITIVE}, got 0"),
        (f"{R0}.options", [1], f"{R0}.options: must be a mapping, got a list"),
        (
            f"{R0}.options",
            {"quantise": 4},
            f"{R0}.options.quantise: unknown option for the mlx backend (did you mean 'quantize'?)",
        ),
        (
            f"{R1}.options",
            {"zzz": 1},
            f"{R1}.options.zzz: unknown option for the torch backend; known: activation_fn, attn_implementation",
        ),
        (f"{R2}.model", "./models/missing", f"{R2}.model: no such model path: "),
        ("baseline", "nobody", "baseline: 'nobody' is not one of the rerankers (m-mlx, m-torch, mine)"),
        ("metrics", ["ndcg@10", "bleu@4"], "metrics[1]: unknown metric 'bleu@4'"),
        ("metrics", ["ndcg@10", "NDCG@10"], "metrics[1]: duplicate metric 'ndcg@10'"),
        ("metrics", [], "metrics: must be a non-empty list of metric names, got a list"),
        ("datasets", [], "datasets: must be a non-empty list, got a list"),
        ("rerankers", {"a": 1}, "rerankers: must be a non-empty list, got a mapping"),
        ("measure.repeats", 0, f"measure.repeats: {POSITIVE}, got 0"),
        ("measure.warmup_queries", -1, "measure.warmup_queries: must be a non-negative integer, got -1"),
        ("seed", 1.5, "seed: must be a non-negative integer, got 1.5"),
        ("train", "later", "train: must be a mapping, got 'later'"),
        ("datasets[4]", "dl20", "datasets[4]: must be a mapping, got 'dl20'"),
    ],
)
def test_validation_errors(folder, path, value, message):
    data = copy.deepcopy(base_suite())
    set_path(data, path, value)
    text = errors_of(folder, data)
    assert f"{folder / 's.yaml'}: {message}" in text


def test_all_problems_are_reported_together(folder):
    data = base_suite()
    data["datasets"][0]["top_k"] = 0
    data["rerankers"][0]["backend"] = "jax"
    data["baseline"] = "nobody"
    error = pytest.raises(SuiteError, load_suite, write(folder, data)).value
    assert len(error.errors) == 3
    assert [e.split(": ")[1] for e in error.errors] == ["datasets[0].top_k", "rerankers[0].backend", "baseline"]


def test_yaml_problems(folder):
    text = errors_of(folder, "name: demo\ndatasets:\n  - {name: a, top_k: [1, 2\nrerankers: []\n")
    assert "invalid YAML: line 4" in text
    text = errors_of(folder, "name: demo\nname: again\ndatasets: []\n")
    assert "invalid YAML: line 2, column 1: duplicate key 'name'" in text
    assert "the suite file is empty" in errors_of(folder, "")
    assert ": must be a mapping, got a list" in errors_of(folder, "- name: demo\n")
    with pytest.raises(SuiteError, match="cannot read suite file"):
        load_suite(folder / "absent.yaml")


def test_suite_from_dict_uses_the_given_source_name(folder):
    data = base_suite()
    data["datasets"][0]["top_k"] = -3
    with pytest.raises(SuiteError, match=r"^suites/x\.yaml: datasets\[0\]\.top_k: must be a positive integer, got -3$"):
        suite_from_dict(data, folder, source="suites/x.yaml")


@pytest.mark.parametrize("path", sorted((REPO / "suites").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_suite_validates(path, tmp_path, monkeypatch):
    monkeypatch.setenv("IR_DATASETS_HOME", str(tmp_path / "empty-ir-datasets-home"))
    try:
        suite = load_suite(path)
    except SuiteError as exc:
        if not SHARED.is_dir() and all("shared/data" in line for line in exc.errors):
            pytest.skip(f"{path.name} reads ../shared/data, not found at {SHARED}")
        raise
    assert suite.baseline is None or suite.baseline in {r.name for r in suite.rerankers}
    home = tmp_path / "empty-ir-datasets-home"  # importing ir_datasets may create it, empty
    assert not [p for p in home.rglob("*") if p.is_file()]  # validation fetched or prepared nothing


@pytest.mark.parametrize("name", ["beir.yaml", "trec-dl.yaml"])
def test_shipped_id_based_suites(name):
    suite = load_suite(REPO / "suites" / name)
    assert all(d.source_kind == "ir_datasets" and d.top_k == 100 for d in suite.datasets)
    assert {(r.model, r.backend) for r in suite.rerankers} == {
        (m, b) for m in ("cross-encoder/ms-marco-MiniLM-L-6-v2", "BAAI/bge-reranker-v2-m3") for b in ("mlx", "torch")
    }
    levels = {d.ir_datasets: d.relevance_level for d in suite.datasets}
    assert all(level == (2 if "trec-dl" in i else 1) for i, level in levels.items())


def test_shipped_local_trec_dl_suite():
    if not SHARED.is_dir():
        pytest.skip(f"shared TREC DL data not found at {SHARED}")
    suite = load_suite(REPO / "suites" / "trec-dl-local.yaml")
    assert [d.name for d in suite.datasets] == ["dl19", "dl20", "dl21"]
    assert all(d.candidates.is_file() and d.qrels.is_file() and d.relevance_level == 2 for d in suite.datasets)
    assert {r.model for r in suite.rerankers} == {"local:minilm-l6-seeded-head"}
    assert {r.backend for r in suite.rerankers} == {"mlx", "torch"}
    assert suite.reranker(suite.baseline).backend == "torch"
