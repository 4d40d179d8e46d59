"""``dtype: tf32`` in the harness: float32 weights and activations with float32 matmuls in TF32 where the hardware
has TF32 units (MLX: ``MLX_ENABLE_TF32=1`` before mlx.core loads; torch: ``allow_tf32``), ``float32`` full float32,
each row getting what it asks for and recording what ran (``system.float32_matmul``).

On this CPU there are no TF32 units: a tf32 row computes plain float32 (same scores as the float32 row), records
``float32_matmul: float32`` and says so in its warnings. The TF32 numerics themselves need a GPU (the lead's H200
runs)."""

from __future__ import annotations

from pathlib import Path

import builders
import numpy as np
import pytest
import yaml

from harness import backends
from harness.run.executor import run_suite
from harness.suite import RerankerSpec, SuiteError, load_suite, suite_from_dict

ENV = {"chip": {"name": "test"}}
ROWS = [("mlx", "float32"), ("mlx", "tf32"), ("torch", "float32"), ("torch", "tf32")]
PROCESS_ROWS = [ROWS[0], ROWS[1], ROWS[3]]  # torch float32 is checked in process (one torch import less)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return builders.bert_cross_encoder(tmp_path_factory.mktemp("bert"), seed=3, initializer_range=0.2)


def suite_data(model: str, rows=ROWS) -> dict:
    return {
        "name": "tf32-test",
        "datasets": [builders.smoke_dataset(top_k=5)],
        "rerankers": [
            {"name": f"{backend}-{dtype}", "backend": backend, "model": model, "dtype": dtype, "device": "cpu"}
            for backend, dtype in rows
        ],
        "metrics": ["ndcg@10"],
        "measure": {"warmup_queries": 0, "repeats": 1},
    }


def test_the_suite_accepts_tf32_and_names_the_field_of_a_typo(tmp_path, tiny_bert):
    suite = suite_from_dict(suite_data(str(tiny_bert)), tmp_path)
    assert [r.dtype for r in suite.rerankers] == ["float32", "tf32", "float32", "tf32"]
    data = suite_data(str(tiny_bert))
    data["rerankers"][1]["dtype"] = "tf-32"
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    assert info.value.errors == [
        f"{path}: rerankers[1].dtype: must be one of float32, tf32, float16, bfloat16, got 'tf-32'"
    ]
    assert backends.canonical_dtype("TF32") == "tf32"


def test_each_row_gets_its_own_tf32_switch_in_one_suite_and_records_what_ran(tmp_path, tiny_bert, monkeypatch):
    """Through the real runner: one worker process per row. The parent's own switch says TF32 on, which the
    float32 rows must not inherit; the tf32 rows must get it."""
    # the runner loads MLX in this process too: load it first, with the library's own switch (its import hook sets
    # MLX_ENABLE_TF32=0), so that the switch restored after the test is the one this process's MLX read
    import mlx_cross_encoder  # noqa: F401

    # isort: split
    import mlx.core  # noqa: F401

    monkeypatch.setenv("MLX_ENABLE_TF32", "1")
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(suite_data(str(tiny_bert), PROCESS_ROWS)))
    results, _ = run_suite(load_suite(path), output=tmp_path / "r.json", progress=False, environment=ENV)
    runs = {run["reranker"]: run for run in results["runs"] if run["reranker"] in {f"{b}-{d}" for b, d in ROWS}}
    assert {name: run["status"] for name, run in runs.items()} == {f"{b}-{d}": "ok" for b, d in PROCESS_ROWS}, [
        run.get("error") for run in runs.values()
    ]
    system = {name: run["system"] for name, run in runs.items()}
    assert system["mlx-float32"]["mlx_enable_tf32"] == "0"
    assert system["mlx-tf32"]["mlx_enable_tf32"] == "1"
    assert system["torch-tf32"]["torch_allow_tf32"] is True
    # a CPU has no TF32 units: every row computed full float32 and says so; the tf32 rows warn about it
    assert {name: s["float32_matmul"] for name, s in system.items()} == {name: "float32" for name in runs}
    assert {name: s["dtype"] for name, s in system.items()} == {f"{b}-{d}": d for b, d in PROCESS_ROWS}
    for name in ("mlx-tf32", "torch-tf32"):
        assert any("dtype tf32 ran as full float32" in w for w in runs[name]["warnings"])
    assert not any("tf32" in w for w in runs["mlx-float32"]["warnings"])
    # same rankings per query (results keep metrics, not scores; the scores themselves are compared in
    # test_torch_tf32_switches_hold_during_predict_only and test_float32_precision.py)
    assert runs["mlx-tf32"]["per_query"] == runs["mlx-float32"]["per_query"]


REFUSE = """
import json, sys
from types import SimpleNamespace
from harness import backends
spec = lambda dtype: SimpleNamespace(name="m-" + dtype, backend="mlx", model=sys.argv[1], dtype=dtype, device="cpu",
                                     batch_size=8, instruction=None, options={}, suite_file="suites/x.yaml")
backends.load_backend(spec(sys.argv[2]), 64, sys.argv[1])
try:
    backends.load_backend(spec(sys.argv[3]), 64, sys.argv[1])
    print("RESULT " + json.dumps("loaded"))
except backends.BackendError as exc:
    print("RESULT " + json.dumps(str(exc)))
"""


def second_load(model: Path, first: str, second: str) -> str:
    return builders.run_fresh(REFUSE, str(model), first, second, timeout=300)


def test_a_process_that_loaded_mlx_with_the_other_switch_refuses_the_row(tiny_bert):
    message = second_load(tiny_bert, "float32", "tf32")
    assert message.startswith("suites/x.yaml: reranker 'm-tf32', field dtype: tf32 needs MLX_ENABLE_TF32=1")
    assert "already loaded MLX with MLX_ENABLE_TF32=0" in message
    message = second_load(tiny_bert, "tf32", "float32")
    assert message.startswith("suites/x.yaml: reranker 'm-float32', field dtype: float32 needs MLX_ENABLE_TF32=0")
    assert second_load(tiny_bert, "tf32", "bfloat16") == "loaded"  # half precision promises no float32 products


def test_torch_tf32_switches_hold_during_predict_only(tiny_bert):
    """torch's allow_tf32 switches are process-wide: each predict call runs with its row's (tf32: on; float32: off,
    even where something turned them on) and puts back what was there."""
    import torch

    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    before = matmul.allow_tf32, cudnn.allow_tf32
    pairs = builders.pairs(6)
    try:
        scores = {}
        for dtype, outside in (("float32", True), ("tf32", False)):
            spec = RerankerSpec(name=f"t-{dtype}", backend="torch", model=str(tiny_bert), dtype=dtype, device="cpu")
            backend = backends.load_backend(spec, 64, tiny_bert)
            seen = []
            linear = next(m for m in backend.model.modules() if isinstance(m, torch.nn.Linear))  # a float32 matmul
            linear.register_forward_hook(lambda *_, seen=seen: seen.append((matmul.allow_tf32, cudnn.allow_tf32)))
            matmul.allow_tf32 = cudnn.allow_tf32 = outside
            scores[dtype] = backend.predict(pairs, batch_size=4)
            assert seen and set(seen) == {(dtype == "tf32",) * 2}
            assert (matmul.allow_tf32, cudnn.allow_tf32) == (outside, outside)
            assert backend.describe()["torch_allow_tf32"] is (dtype == "tf32")
        np.testing.assert_allclose(scores["tf32"], scores["float32"], rtol=1e-6, atol=1e-6)  # no TF32 units here
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = before
