"""MLXCrossEncoder (BERT) against transformers and sentence-transformers on the same directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import builders
import numpy as np
import pytest
import torch
from sentence_transformers import CrossEncoder
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from mlx_cross_encoder import MLXCrossEncoder, ModelLoadError, UnsupportedArchitectureError

SPREAD = dict(initializer_range=0.2)  # wide random weights: scores spread, so orders are meaningful


def reference_logits(directory, pairs, max_length, batch_size=5, dtype=torch.float32):
    tok = AutoTokenizer.from_pretrained(directory)
    model = AutoModelForSequenceClassification.from_pretrained(directory, dtype=dtype).eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(pairs), batch_size):
            q, d = zip(*pairs[i : i + batch_size])
            enc = tok(
                list(q), list(d), padding=True, truncation="longest_first", max_length=max_length, return_tensors="pt"
            )
            out.append(model(**enc).logits.float().numpy())
    return np.concatenate(out)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return builders.bert_cross_encoder(tmp_path_factory.mktemp("bert1"), seed=1, **SPREAD)


@pytest.fixture(scope="module")
def tiny_bert3(tmp_path_factory):
    return builders.bert_cross_encoder(tmp_path_factory.mktemp("bert3"), seed=2, num_labels=3, **SPREAD)


@pytest.mark.parametrize("max_length", [24, 128])
def test_bert_logits_match_transformers(tiny_bert, max_length):
    pairs = builders.pairs()
    ref = reference_logits(tiny_bert, pairs, max_length)[:, 0]
    ours = MLXCrossEncoder(tiny_bert, max_length=max_length).predict(pairs, batch_size=7, activation_fn="identity")
    assert ours.shape == (len(pairs),)
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=0)
    assert np.std(ref) > 1e-2  # the comparison is not between constants


def test_bert_predict_and_rank_match_sentence_transformers(tiny_bert):
    pairs = builders.pairs()
    ce = CrossEncoder(str(tiny_bert), max_length=40, device="cpu")
    ours = MLXCrossEncoder(tiny_bert, max_length=40)
    np.testing.assert_allclose(ours.predict(pairs, batch_size=4), ce.predict(pairs, batch_size=4), atol=1e-4)
    query, docs = builders.QUERIES[0], builders.DOCUMENTS
    want = ce.rank(query, docs, return_documents=True)
    got = ours.rank(query, docs, return_documents=True)
    assert [r["corpus_id"] for r in got] == [r["corpus_id"] for r in want]
    assert [r["text"] for r in got] == [r["text"] for r in want]
    np.testing.assert_allclose([r["score"] for r in got], [r["score"] for r in want], atol=1e-4)
    top = ours.rank(query, docs, top_k=3)
    assert [r["corpus_id"] for r in top] == [r["corpus_id"] for r in want[:3]] and "text" not in top[0]


def test_multi_label_matches_and_defaults_to_identity(tiny_bert3):
    pairs = builders.pairs(20)
    ref = reference_logits(tiny_bert3, pairs, 64)
    model = MLXCrossEncoder(tiny_bert3, max_length=64)
    ours = model.predict(pairs, batch_size=6)
    assert ours.shape == (20, 3)
    np.testing.assert_allclose(ours, ref, atol=1e-4)
    ce = CrossEncoder(str(tiny_bert3), max_length=64, device="cpu")
    np.testing.assert_allclose(ours, ce.predict(pairs), atol=1e-4)


def test_single_pair_and_input_order(tiny_bert):
    model = MLXCrossEncoder(tiny_bert)
    pairs = builders.pairs()
    batched = model.predict(pairs, batch_size=8)
    one_by_one = np.array([model.predict(p) for p in pairs])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    assert np.ndim(model.predict(pairs[0])) == 0
    sigmoid = 1 / (1 + np.exp(-model.predict(pairs, activation_fn="identity")))
    np.testing.assert_allclose(batched, sigmoid, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_close_to_float32_with_same_top10(tmp_path, dtype):
    """Half precision against the float32 reference. The net uses initializer_range 0.1: at 0.2 the random net is
    so chaotic that transformers' own bf16 drifts 0.021 from its float32. Real weights: see the MiniLM test."""
    d = builders.bert_cross_encoder(tmp_path, seed=1, initializer_range=0.1)
    pairs = builders.pairs()
    ref = reference_logits(d, pairs, 128, batch_size=len(pairs))[:, 0]
    assert np.std(ref) > 0.01
    ours = MLXCrossEncoder(d, dtype=dtype).predict(pairs, batch_size=len(pairs), activation_fn="identity")
    np.testing.assert_allclose(ours, ref, atol=2e-2)
    if dtype == "float16":  # bf16 keeps 8 mantissa bits: this random net's score gaps are below its resolution
        assert list(np.argsort(-ours)[:10]) == list(np.argsort(-ref)[:10])


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_matches_transformers_in_the_same_dtype(tiny_bert, dtype):
    pairs = builders.pairs()
    ref = reference_logits(tiny_bert, pairs, 128, batch_size=len(pairs), dtype=getattr(torch, dtype))[:, 0]
    ours = MLXCrossEncoder(tiny_bert, dtype=dtype).predict(pairs, batch_size=len(pairs), activation_fn="identity")
    np.testing.assert_allclose(ours, ref, atol=3e-2)  # two bf16 implementations, different rounding order


@pytest.mark.parametrize("bits", [8, 4])
def test_quantized_linear_layers_keep_ranking(tmp_path, bits):
    d = builders.bert_cross_encoder(tmp_path, seed=3, hidden_size=128, intermediate_size=256, **SPREAD)
    pairs = builders.pairs()
    full = MLXCrossEncoder(d).predict(pairs, activation_fn="identity")
    quant_model = MLXCrossEncoder(d, quantize=bits)
    quant = quant_model.predict(pairs, activation_fn="identity")
    import mlx.nn as nn

    kinds = {type(m).__name__ for _, m in quant_model.model.named_modules()}
    assert "QuantizedLinear" in kinds
    assert isinstance(quant_model.model.classifier, nn.Linear)  # the head stays in full precision
    assert np.all(np.isfinite(quant)) and not np.allclose(quant, full, atol=1e-6)
    rho = np.corrcoef(np.argsort(np.argsort(full)), np.argsort(np.argsort(quant)))[0, 1]
    assert rho > (0.95 if bits == 8 else 0.8)


@pytest.mark.slow
def test_minilm_width_parity(tmp_path):
    """MiniLM-L6-H384 shape (6 layers, 12 heads, 1536 FFN, 512 positions) at full width, long inputs."""
    d = builders.bert_cross_encoder(
        tmp_path,
        seed=4,
        hidden_size=384,
        num_hidden_layers=6,
        num_attention_heads=12,
        intermediate_size=1536,
        max_position_embeddings=512,
    )
    pairs = [(q, d_ * 6) for q, d_ in builders.pairs()]
    ref = reference_logits(d, pairs, 512, batch_size=8)[:, 0]
    ours = MLXCrossEncoder(d, max_length=512).predict(pairs, batch_size=8, activation_fn="identity")
    np.testing.assert_allclose(ours, ref, atol=1e-4)


@pytest.mark.slow
def test_real_minilm_weights_with_seeded_head_match_sentence_transformers(tmp_path):
    from harness.localmodels import build_minilm_seeded_head

    d = build_minilm_seeded_head(tmp_path / "minilm", seed=0)
    pairs = builders.pairs()
    ce = CrossEncoder(str(d), device="cpu")
    ours = MLXCrossEncoder(d)
    assert ours.max_length == 512
    want = ce.predict(pairs, batch_size=16, activation_fn=torch.nn.Identity())
    got = ours.predict(pairs, batch_size=16, activation_fn="identity")
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert list(np.argsort(-got)[:10]) == list(np.argsort(-want)[:10])
    for dtype in ("float16", "bfloat16"):
        half = MLXCrossEncoder(d, dtype=dtype).predict(pairs, batch_size=16, activation_fn="identity")
        np.testing.assert_allclose(half, want, atol=2e-2)
        # half precision moves these scores by up to ~1e-3 (bfloat16 has 8 bits of mantissa), so pairs closer
        # than that may swap by rounding alone; every pair further apart keeps its order
        same_order_where_separated(half, want, margin=3e-3)


def same_order_where_separated(got, want, margin: float) -> None:
    i, j = np.triu_indices(len(want), 1)
    apart = np.abs(want[i] - want[j]) > margin
    assert apart.sum() > len(want)  # the check covers many pairs
    assert (np.sign(got[i] - got[j]) == np.sign(want[i] - want[j]))[apart].all()


def test_blas_switch_off_gives_same_scores(tiny_bert):
    """The optimized BLAS only changes speed: scores with MLX's reference BLAS are the same."""
    code = (
        "import json,sys; sys.path.insert(0, 'tests'); import builders, mlx_cross_encoder as m, mlx_cross_encoder._blas as b;"
        f"s=m.MLXCrossEncoder({str(tiny_bert)!r}).predict(builders.pairs(), activation_fn='identity');"
        "print(json.dumps({'lib': b.loaded_library, 'scores': s.tolist()}))"
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    runs = {}
    for setting in ("off", "auto"):
        env = {**os.environ, "MLX_CROSS_ENCODER_BLAS": setting}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True, check=True
        )
        runs[setting] = json.loads(out.stdout.strip().splitlines()[-1])
    assert runs["off"]["lib"] is None
    if sys.platform.startswith("linux"):
        assert runs["auto"]["lib"] is not None, "no optimized BLAS found although mkl is a Linux dependency"
    np.testing.assert_allclose(runs["off"]["scores"], runs["auto"]["scores"], atol=1e-5)


# -- errors ---------------------------------------------------------------------------------------------


def test_input_errors(tiny_bert):
    model = MLXCrossEncoder(tiny_bert)
    with pytest.raises(ValueError, match="documents is empty"):
        model.rank("query", [])
    with pytest.raises(ValueError, match="pairs is empty"):
        model.predict([])
    with pytest.raises(ValueError, match=r"pairs\[1\]\[1\] is an empty string \(document\)"):
        model.predict([("q", "d"), ("q", "  ")])
    with pytest.raises(ValueError, match="query"):
        model.predict([("", "d")])
    with pytest.raises(TypeError, match=r"pairs\[0\]\[1\] must be a string, got int"):
        model.predict([("q", 3)])
    with pytest.raises(TypeError, match="query must be a string"):
        model.rank(None, ["d"])
    with pytest.raises(TypeError, match="documents must be a list of strings"):
        model.rank("q", "just one string")
    with pytest.raises(TypeError, match="pairs must be"):
        model.predict("a string")
    with pytest.raises(ValueError, match="unknown activation_fn"):
        model.predict([("q", "d")], activation_fn="softplus")


def test_loading_errors(tiny_bert, tmp_path):
    import shutil

    with pytest.raises(ModelLoadError, match="model directory not found"):
        MLXCrossEncoder(tmp_path / "nope")
    with pytest.raises(TypeError, match="must be a string or path"):
        MLXCrossEncoder(42)

    missing = shutil.copytree(tiny_bert, tmp_path / "missing")
    (missing / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="no model weights"):
        MLXCrossEncoder(missing)

    pickled = shutil.copytree(tiny_bert, tmp_path / "pickled")
    (pickled / "model.safetensors").unlink()
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(
        ModelLoadError, match=r"only pickled weights \(pytorch_model.bin\).*never unpickles.*save_pretrained"
    ):
        MLXCrossEncoder(pickled)

    corrupt = shutil.copytree(tiny_bert, tmp_path / "corrupt")
    data = (corrupt / "model.safetensors").read_bytes()
    (corrupt / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="cannot read weights from .*model.safetensors"):
        MLXCrossEncoder(corrupt)

    wrong = shutil.copytree(tiny_bert, tmp_path / "wrong")
    cfg = json.loads((wrong / "config.json").read_text())
    (wrong / "config.json").write_text(json.dumps({**cfg, "hidden_size": 64, "intermediate_size": 128}))
    with pytest.raises(ModelLoadError, match="do not fit"):
        MLXCrossEncoder(wrong)

    incomplete = shutil.copytree(tiny_bert, tmp_path / "incomplete")
    import mlx.core as mx

    weights = mx.load(str(incomplete / "model.safetensors"))
    mx.save_safetensors(
        str(incomplete / "model.safetensors"), {k: v for k, v in weights.items() if "classifier" not in k}
    )
    with pytest.raises(ModelLoadError, match=r"missing 2 tensors \(e.g. classifier.bias, classifier.weight\)"):
        MLXCrossEncoder(incomplete)

    unsupported = shutil.copytree(tiny_bert, tmp_path / "unsupported")
    (unsupported / "config.json").write_text(json.dumps({**cfg, "architectures": ["T5ForConditionalGeneration"]}))
    with pytest.raises(
        UnsupportedArchitectureError, match="T5ForConditionalGeneration.*supports: BertForSequenceClassification"
    ):
        MLXCrossEncoder(unsupported)

    no_config = shutil.copytree(tiny_bert, tmp_path / "noconfig")
    (no_config / "config.json").unlink()
    with pytest.raises(ModelLoadError, match="has no config.json"):
        MLXCrossEncoder(no_config)

    with pytest.raises(ValueError, match="unsupported dtype"):
        MLXCrossEncoder(tiny_bert, dtype="int8")
    with pytest.raises(ValueError, match="quantize must be 4 or 8"):
        MLXCrossEncoder(tiny_bert, quantize=3)


def test_hub_id_offline_gives_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(ModelLoadError, match=r"could not fetch 'cross-encoder/not-cached'.*HF_HUB_OFFLINE"):
        MLXCrossEncoder("cross-encoder/not-cached")


def test_hub_id_served_from_cache(monkeypatch, tmp_path, tiny_bert):
    """A Hub id resolves through huggingface_hub's cache (what HF_HUB_OFFLINE=1 serves)."""
    import huggingface_hub

    calls = {}

    def fake_snapshot_download(repo_id, revision=None, allow_patterns=None):
        calls.update(repo_id=repo_id, revision=revision, allow_patterns=allow_patterns)
        return str(tiny_bert)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    model = MLXCrossEncoder.from_pretrained("org/tiny-bert", revision="abc123")
    assert calls["repo_id"] == "org/tiny-bert" and calls["revision"] == "abc123"
    assert not any(p.endswith(".bin") for p in calls["allow_patterns"])  # never fetch pickles
    assert model.model_dir == tiny_bert


def test_cpu_streams_split_batches_without_changing_scores(tiny_bert, monkeypatch):
    """On the CPU each batch is split over one MLX stream per core; scores equal the single-stream path."""
    import mlx.core as mx

    from mlx_cross_encoder import _blas

    pairs = builders.pairs()
    monkeypatch.setenv("MLX_CROSS_ENCODER_CPU_STREAMS", "3")
    model = MLXCrossEncoder(tiny_bert)
    before = _blas.blas_threads()
    spread = model.predict(pairs, batch_size=8, activation_fn="identity")
    if mx.default_device() == mx.cpu:
        assert len(model._streams) == 3
    assert _blas.blas_threads() == before  # the BLAS thread count is restored after predict
    monkeypatch.setenv("MLX_CROSS_ENCODER_CPU_STREAMS", "1")
    single = MLXCrossEncoder(tiny_bert).predict(pairs, batch_size=8, activation_fn="identity")
    np.testing.assert_allclose(spread, single, atol=1e-6)
    np.testing.assert_allclose(spread, reference_logits(tiny_bert, pairs, 128)[:, 0], atol=1e-4)
