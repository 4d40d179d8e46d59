"""The suite option ``max_batch_tokens``: the mlx and torch backends run the very same batches, and its scores."""

from __future__ import annotations

from types import SimpleNamespace

import builders
import numpy as np
import pytest

from harness.backends import BackendError, load_backend

#: padded tokens: splits the 16-row batches below, and the longest pairs (cut at max_length) run alone
BUDGETS = {"cross_encoder": 20, "llm": 250}


def spec(backend, **fields):
    base = dict(
        name=f"t-{backend}",
        backend=backend,
        model="unused",
        dtype=None,
        batch_size=16,
        max_length=None,
        device="auto",
        instruction=None,
        options={},
    )
    return SimpleNamespace(**{**base, **fields})


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RERANKER_HARNESS_CACHE", str(tmp_path / "cache"))


def batches_run(backend, pairs, monkeypatch) -> tuple[list[list[int]], np.ndarray]:
    """The row indices of each batch the backend's model scored, in order, and the scores."""
    seen: list[list[int]] = []
    if backend.name == "torch":
        where = {p: i for i, p in enumerate(pairs)}
        inner = backend._predict

        def spy(batch_pairs, batch_size):
            seen.append([where[p] for p in batch_pairs])
            return inner(batch_pairs, batch_size)

        monkeypatch.setattr(backend, "_predict", spy)
    else:
        name = "_plan" if hasattr(backend.model, "_plan") else "plan"
        inner = getattr(backend.model, name)

        def spy(*args, **kwargs):
            plan = inner(*args, **kwargs)
            seen.extend(b if name == "plan" else b[1] for b in plan)
            return plan

        monkeypatch.setattr(backend.model, name, spy)
    scores = backend.predict(pairs, 16)
    monkeypatch.undo()
    return seen, scores


@pytest.mark.parametrize("kind", ["cross_encoder", "cross_encoder_gpu_widths", "llm"])
def test_backends_run_the_same_budgeted_batches(kind, tmp_path, monkeypatch):
    if kind.startswith("cross_encoder"):
        model_dir, max_length = builders.bert_cross_encoder(tmp_path / "bert", seed=1, initializer_range=0.2), 24
        pairs = builders.pairs()
    else:
        model_dir, max_length = builders.qwen3_causal_lm(tmp_path / "qwen3", seed=3), 256
        documents = builders.DOCUMENTS + [builders.long_document(200, seed=3)]
        pairs = [(builders.QUERIES[0], d) for d in documents]  # the harness scores one query per call
    budget = BUDGETS["llm" if kind == "llm" else "cross_encoder"]
    options = {"max_batch_tokens": budget}
    loaded = {b: load_backend(spec(b, options=options), max_length, model_dir) for b in ("mlx", "torch")}
    if kind == "cross_encoder_gpu_widths":  # as on a GPU: MLX rounds widths up to 32 (the same batches all the same)
        loaded["mlx"].model.length_multiple = 32
    runs = {b: batches_run(loaded[b], pairs, monkeypatch) for b in loaded}
    counts = loaded["mlx"].token_counts(pairs)
    mlx_batches = runs["mlx"][0]
    assert runs["torch"][0] == mlx_batches
    assert all(len(b) == 1 or len(b) * counts[b].max() <= budget for b in mlx_batches)
    assert len(mlx_batches) > -(-len(pairs) // 16), "the budget must split batches"
    assert any(len(b) > 1 for b in mlx_batches)
    assert any(len(b) == 1 and counts[b[0]] > budget for b in mlx_batches), "a pair over the budget runs alone"
    plain = {b: load_backend(spec(b), max_length, model_dir).predict(pairs, 16) for b in loaded}
    for b in loaded:
        np.testing.assert_allclose(runs[b][1], plain[b], atol=2e-6, rtol=1e-5)
    np.testing.assert_allclose(runs["mlx"][1], runs["torch"][1], atol=1e-4)


@pytest.mark.parametrize("backend", ["mlx", "torch"])
@pytest.mark.parametrize("value", [0, -3, 1.5, "8192", True])
def test_bad_budget_is_refused(backend, value, tmp_path):
    model_dir = builders.bert_cross_encoder(tmp_path / "bert", seed=1)
    with pytest.raises(BackendError, match="max_batch_tokens must be a positive integer"):
        load_backend(spec(backend, options={"max_batch_tokens": value}), 24, model_dir)


def test_tokenize_processes_option_reaches_the_mlx_model_and_is_checked(tmp_path):
    model_dir = builders.bert_cross_encoder(tmp_path / "bert", seed=1)
    backend = load_backend(spec("mlx", options={"tokenize_processes": 3}), 24, model_dir)
    assert backend.model.tokenize_processes == 3
    assert load_backend(spec("mlx"), 24, model_dir).model.tokenize_processes is None  # unset: the environment's
    for value in (-1, 1.5, "4", True):
        with pytest.raises(BackendError, match="option tokenize_processes must be None or an integer >= 0"):
            load_backend(spec("mlx", options={"tokenize_processes": value}), 24, model_dir)
