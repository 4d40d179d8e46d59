"""Backends: one truncation length for all, token counts, scores, weights fingerprints, clear refusals."""

from __future__ import annotations

import hashlib
import json
import os
from types import SimpleNamespace

import builders
import numpy as np
import pytest

from harness.backends import BackendError, load_backend, resolve_max_length, weights_fingerprint

LONG = builders.long_document(400, seed=3)
PAIRS = builders.pairs() + [("what is oauth authorization code flow", LONG)]


def spec(backend, model="unused", **fields):
    base = dict(
        name=f"t-{backend}",
        backend=backend,
        model=model,
        dtype=None,
        batch_size=4,
        max_length=None,
        device="auto",
        instruction=None,
        options={},
    )
    return SimpleNamespace(**{**base, **fields})


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return builders.bert_cross_encoder(tmp_path_factory.mktemp("bert"), seed=1, initializer_range=0.2)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RERANKER_HARNESS_CACHE", str(tmp_path / "cache"))


def checkpoint(tmp_path, config, tokenizer_config=None):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "config.json").write_text(json.dumps(config))
    if tokenizer_config is not None:
        (tmp_path / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    return tmp_path


@pytest.mark.parametrize(
    "config, tokenizer_config, requested, expected",
    [
        ({"max_position_embeddings": 512}, {"model_max_length": 128}, None, (128, "tokenizer")),
        ({"max_position_embeddings": 512}, {"model_max_length": 512}, None, (512, "tokenizer")),
        ({"max_position_embeddings": 512}, {"model_max_length": 1024}, None, (512, "positions")),
        ({"max_position_embeddings": 512}, {"model_max_length": int(1e30)}, None, (512, "positions")),
        ({"max_position_embeddings": 512}, None, None, (512, "positions")),
        (
            {"model_type": "xlm-roberta", "max_position_embeddings": 514, "pad_token_id": 1},
            None,
            None,
            (512, "positions"),
        ),
        ({}, {"model_max_length": 256}, None, (256, "tokenizer")),
        ({"max_position_embeddings": 512}, {"model_max_length": 128}, 300, (300, "suite")),
        ({"max_position_embeddings": 512}, None, 512, (512, "suite")),
    ],
)
def test_resolve_max_length(tmp_path, config, tokenizer_config, requested, expected):
    model = checkpoint(tmp_path, {"architectures": ["BertForSequenceClassification"], **config}, tokenizer_config)
    assert resolve_max_length(model, requested) == expected


def test_resolve_max_length_errors(tmp_path):
    model = checkpoint(tmp_path / "m", {"max_position_embeddings": 512})
    with pytest.raises(BackendError, match="max_length 513 exceeds the 512 positions of m; use max_length <= 512"):
        resolve_max_length(model, 513)
    with pytest.raises(BackendError, match="max_length must be an integer >= 2"):
        resolve_max_length(model, 1)
    with pytest.raises(BackendError, match="has no config.json"):
        resolve_max_length(tmp_path / "empty", None)
    unknown = checkpoint(tmp_path / "u", {"architectures": ["X"]}, {"model_max_length": int(1e30)})
    with pytest.raises(BackendError, match="cannot tell the maximum input length of u .* set max_length in the suite"):
        resolve_max_length(unknown, None)


def test_weights_fingerprint_single_file_sharded_and_cached(tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"weights-1")
    assert weights_fingerprint(model) == hashlib.sha256(b"weights-1").hexdigest()
    cache = json.loads((tmp_path / "cache" / "weights-sha256.json").read_text())
    assert cache[str((model / "model.safetensors").resolve())]["sha256"] == hashlib.sha256(b"weights-1").hexdigest()
    # changed content (size and mtime): hashed again, not served from the cache
    (model / "model.safetensors").write_bytes(b"weights-22")
    assert weights_fingerprint(model) == hashlib.sha256(b"weights-22").hexdigest()
    # a cached entry is trusted while path, mtime and size match (the point of the cache)
    path = str((model / "model.safetensors").resolve())
    cache = json.loads((tmp_path / "cache" / "weights-sha256.json").read_text())
    cache[path]["sha256"] = "cached"
    (tmp_path / "cache" / "weights-sha256.json").write_text(json.dumps(cache))
    assert weights_fingerprint(model) == "cached"

    sharded = tmp_path / "s"
    sharded.mkdir()
    (sharded / "model-00002-of-00002.safetensors").write_bytes(b"b")
    (sharded / "model-00001-of-00002.safetensors").write_bytes(b"a")
    lines = "".join(
        f"model-0000{i}-of-00002.safetensors {hashlib.sha256(x).hexdigest()}\n" for i, x in ((1, b"a"), (2, b"b"))
    )
    assert weights_fingerprint(sharded) == hashlib.sha256(lines.encode()).hexdigest()
    assert weights_fingerprint(tmp_path) is None  # no safetensors


@pytest.fixture(scope="module")
def loaded(tiny_bert, tmp_path_factory):
    os.environ["RERANKER_HARNESS_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    try:
        return {b: load_backend(spec(b, model="tiny"), 12, tiny_bert) for b in ("mlx", "torch")}
    finally:
        del os.environ["RERANKER_HARNESS_CACHE"]


def test_backends_truncate_and_count_tokens_alike(loaded, tiny_bert):
    from mlx_cross_encoder import MLXCrossEncoder

    reference = MLXCrossEncoder(tiny_bert, max_length=12).token_counts(PAIRS)
    for backend in loaded.values():
        counts = backend.token_counts(PAIRS)
        assert counts.dtype == np.int64
        np.testing.assert_array_equal(counts, reference)
        assert backend.max_length == 12
    assert reference.max() == 12 and reference[-1] == 12  # the long pair is cut at max_length


def test_backends_score_alike(loaded):
    mlx_scores = loaded["mlx"].predict(PAIRS, 4)
    torch_scores = loaded["torch"].predict(PAIRS, 4)
    for scores in (mlx_scores, torch_scores):
        assert scores.dtype == np.float32 and scores.shape == (len(PAIRS),)
    np.testing.assert_allclose(mlx_scores, torch_scores, atol=1e-5)
    assert np.ptp(mlx_scores) > 1e-3  # spread: the comparison means something


def test_describe_and_memory(loaded, tiny_bert):
    sha = hashlib.sha256((tiny_bert / "model.safetensors").read_bytes()).hexdigest()
    for name, backend in loaded.items():
        backend.reset_peak_memory()
        backend.predict(PAIRS[:3], 4)
        info = backend.describe()
        assert info["backend"] == name and info["model"] == "tiny" and info["model_path"] == str(tiny_bert)
        assert info["weights_fingerprint"] == sha
        assert (info["dtype"], info["max_length"], info["batch_size"]) == ("float32", 12, 4)
        assert info["architecture"] == "BertForSequenceClassification" and info["memory_measure"]
        assert info["device"] == backend.device
    mlx, torch_backend = loaded["mlx"], loaded["torch"]
    assert mlx.device in ("mlx-cpu", "mlx-gpu")
    assert mlx.describe()["versions"]["mlx"] and "blas" in mlx.describe()
    assert mlx.describe()["mlx_max_ops_per_buffer"] == os.environ.get("MLX_MAX_OPS_PER_BUFFER")  # CUDA graph size
    assert mlx.describe()["mlx_use_cuda_graphs"] == os.environ.get("MLX_USE_CUDA_GRAPHS")  # graphs or direct launches
    assert mlx.describe()["chunk_tokens"] == mlx.model.chunk_tokens  # GPU row chunks recorded (None on the CPU)
    assert mlx.peak_memory_mb() > 0
    assert (
        torch_backend.describe()["versions"]["torch"] and torch_backend.describe()["versions"]["sentence-transformers"]
    )
    if torch_backend.device == "cpu":
        assert torch_backend.peak_memory_mb() is None
    else:
        assert torch_backend.peak_memory_mb() > 0


def test_torch_dtype_is_applied(tiny_bert):
    backend = load_backend(spec("torch", dtype="bf16"), 12, tiny_bert)
    assert backend.dtype == "bfloat16"
    assert str(next(backend.model.parameters()).dtype) == "torch.bfloat16"


def test_llm_reranker_backends_give_the_official_recipe_scores(tmp_path):
    """Causal-LM checkpoints: mlx -> Qwen3Reranker, torch -> the official transformers recipe; same P(yes),
    same token counts, the suite's instruction and max_length applied to both."""
    model_dir = builders.qwen3_causal_lm(tmp_path / "qwen3", seed=3)
    pairs = builders.pairs(12)
    loaded = {
        b: load_backend(spec(b, instruction="Find passages that answer the question"), 72, model_dir)
        for b in ("mlx", "torch")
    }
    scores = {b: loaded[b].predict(pairs, 4) for b in loaded}
    assert all(s.shape == (12,) and np.all((s > 0) & (s < 1)) for s in scores.values())
    np.testing.assert_allclose(scores["mlx"], scores["torch"], atol=1e-4)
    np.testing.assert_array_equal(loaded["mlx"].token_counts(pairs), loaded["torch"].token_counts(pairs))
    assert loaded["mlx"].token_counts(pairs).max() == 72  # long documents are cut to fit
    default = load_backend(spec("mlx"), 72, model_dir).predict(pairs, 4)
    assert not np.allclose(default, scores["mlx"], atol=1e-6)  # the instruction is really in the prompt
    with pytest.raises(BackendError, match="options apply to cross-encoders"):
        load_backend(spec("torch", options={"activation_fn": "sigmoid"}), 72, model_dir)


@pytest.mark.parametrize("backend", ["mlx", "torch"])
def test_refusals(backend, tiny_bert, tmp_path):
    with pytest.raises(BackendError, match="instruction is only used by LLM"):
        load_backend(spec(backend, instruction="Judge relevance"), 12, tiny_bert)
    with pytest.raises(BackendError, match=f"unknown option\\(s\\) bogus for the {backend} backend"):
        load_backend(spec(backend, options={"bogus": 1}), 12, tiny_bert)
    with pytest.raises(BackendError, match="unsupported dtype 'int4'"):
        load_backend(spec(backend, dtype="int4"), 12, tiny_bert)
    with pytest.raises(BackendError, match="device 'tpu'"):
        load_backend(spec(backend, device="tpu"), 12, tiny_bert)


def test_unknown_backend(tiny_bert):
    with pytest.raises(BackendError, match="unknown backend 'onnx'; known: http, mlx, torch"):
        load_backend(spec("onnx"), 12, tiny_bert)
