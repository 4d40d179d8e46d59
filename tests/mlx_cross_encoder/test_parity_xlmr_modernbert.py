"""Parity of the MLX XLM-RoBERTa and ModernBERT cross-encoders with transformers and sentence-transformers.

Every checkpoint is built on disk by ``builders`` (random init, fixed seed, norm weights and biases perturbed)
and read from the same directory by ``transformers.AutoModelForSequenceClassification`` (float32, eval),
``sentence_transformers.CrossEncoder`` and ``MLXCrossEncoder``. Batches mix short and long pairs, so most rows
are padded; MLX batches differ from the references' (other batch sizes, length-sorted), so padding differs too.
"""

from __future__ import annotations

import json
import shutil

import builders
import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from mlx_cross_encoder import MLXCrossEncoder  # first: it sets up MLX's CPU BLAS before mlx is imported
from mlx_cross_encoder.models import get_model_module
from mlx_cross_encoder.models.modernbert import attention_masks
from mlx_cross_encoder.models.xlm_roberta import position_ids_from_input_ids

ATOL = 1e-4  # float32
HALF_ATOL = 2e-2  # float16 / bfloat16 against the float32 reference
ORDER_MARGIN = 1e-2  # candidates for the half-precision top-10 check are at least this far apart in float32

BIASES = dict(norm_bias=True, attention_bias=True, mlp_bias=True, classifier_bias=True)

# name -> (builder, config). initializer_range 0.2 spreads the single-label scores, so that their order means
# something; the 3-label models use 0.1, as their raw logits at 0.2 (|logit| up to ~2) are already ~0.02 off
# float32 in transformers' own bfloat16, which leaves no room under HALF_ATOL.
TINY = {
    # bge-reranker layout: one token type, 2 + 128 positions
    "xlmr-1": (builders.xlm_roberta_cross_encoder, dict(initializer_range=0.2)),
    # transformers' default type_vocab_size=2: MLX then feeds the tokenizer's (all-zero) type ids
    "xlmr-3": (builders.xlm_roberta_cross_encoder, dict(initializer_range=0.1, num_labels=3, type_vocab_size=2)),
    # local window 8 (4 each side) so the short pairs already cross it; layers: global, local, local, global
    "modernbert-1-cls": (builders.modernbert_cross_encoder, dict(initializer_range=0.2, **BIASES)),
    # mean pooling, no biases, other RoPE bases, global every 2 layers, a classifier activation unlike the MLP's
    "modernbert-3-mean": (
        builders.modernbert_cross_encoder,
        dict(
            initializer_range=0.1,
            num_labels=3,
            seed=1,
            classifier_pooling="mean",
            global_attn_every_n_layers=2,
            global_rope_theta=80_000.0,
            local_rope_theta=20_000.0,
            classifier_activation="silu",
        ),
    ),
}
SINGLE_LABEL = ["xlmr-1", "modernbert-1-cls"]

# widths divisible by the quantization group (64), so the encoder's Linear layers are quantized. Random models
# at initializer_range 0.2 are chaotic enough that 4-bit noise reshuffles their scores (Spearman ~0.8); real
# rerankers are not, and 0.05 behaves more like them.
QUANT = {
    "xlmr": (
        builders.xlm_roberta_cross_encoder,
        dict(initializer_range=0.05, hidden_size=128, intermediate_size=256, max_position_embeddings=514),
    ),
    "modernbert": (
        builders.modernbert_cross_encoder,
        dict(initializer_range=0.05, hidden_size=128, intermediate_size=192, **BIASES),
    ),
}

# real widths (few layers, small vocabulary)
WIDE = {
    # bge-reranker-large / v2-m3 width
    "xlmr-large": (
        builders.xlm_roberta_cross_encoder,
        dict(
            hidden_size=1024,
            num_attention_heads=16,
            intermediate_size=4096,
            num_hidden_layers=2,
            max_position_embeddings=514,
            initializer_range=0.05,
        ),
    ),
    # ModernBERT-base / gte-reranker-modernbert-base width: layers global, local, local, global; window 128
    "modernbert-base": (
        builders.modernbert_cross_encoder,
        dict(
            hidden_size=768,
            num_attention_heads=12,
            intermediate_size=1152,
            num_hidden_layers=4,
            local_attention=128,
            global_attn_every_n_layers=3,
            classifier_pooling="mean",
            initializer_range=0.05,
            **BIASES,
        ),
    ),
}


def long_pairs() -> list[tuple[str, str]]:
    """builders.pairs() plus documents of 300, 200 and 140 words (longer than ModernBERT's 128 window)."""
    extra = [
        ("bm25 rank", builders.long_document(300)),
        ("query", builders.long_document(140, seed=1)),
        ("cat", builders.long_document(200, seed=2)),
    ]
    return builders.pairs() + extra


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    built = {}

    def get(name: str, table: dict = TINY):
        if name not in built:
            build, config = table[name]
            built[name] = build(tmp_path_factory.mktemp(name), **config)
        return built[name]

    return get


def cross_encoder(path, max_length):
    from sentence_transformers import CrossEncoder

    return CrossEncoder(str(path), max_length=max_length, device="cpu")


def hf_logits(path, pairs, max_length) -> np.ndarray:
    """One padded batch through AutoModelForSequenceClassification, float32."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32).eval()
    enc = tok(
        [q for q, _ in pairs],
        [d for _, d in pairs],
        padding=True,
        truncation="longest_first",
        max_length=max_length,
        return_tensors="pt",
    )
    with torch.inference_mode():
        return model(**enc).logits.float().numpy()


def report(label: str, diff: float) -> None:
    print(f"\n{label}: max abs diff {diff:.3g}")


def assert_ranks_equal(got, ref, atol):
    assert [r["corpus_id"] for r in got] == [r["corpus_id"] for r in ref]
    diff = max(abs(g["score"] - r["score"]) for g, r in zip(got, ref))
    assert diff < atol
    return diff


# -- float32 -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("max_length", [24, 128])
@pytest.mark.parametrize("name", list(TINY))
def test_predict_matches_sentence_transformers(checkpoint, name, max_length):
    path, pairs = checkpoint(name), builders.pairs()
    ref = cross_encoder(path, max_length).predict(pairs, batch_size=16)
    mlx = MLXCrossEncoder(path, max_length=max_length)
    got = mlx.predict(pairs, batch_size=6)
    assert got.shape == ref.shape == ((len(pairs),) if mlx.num_labels == 1 else (len(pairs), 3))
    if max_length == 24:
        assert mlx.token_counts(pairs).max() == 24  # some pairs were truncated
    diff = float(np.abs(got - ref).max())
    report(f"{name} predict max_length={max_length}", diff)
    assert diff < ATOL


@pytest.mark.parametrize("name", list(TINY))
def test_logits_match_transformers(checkpoint, name):
    path, pairs = checkpoint(name), builders.pairs()
    ref = hf_logits(path, pairs, max_length=128)
    got = MLXCrossEncoder(path, max_length=128).predict(pairs, batch_size=5, activation_fn="identity")
    diff = float(np.abs(got.reshape(ref.shape) - ref).max())
    report(f"{name} logits", diff)
    assert diff < ATOL


@pytest.mark.parametrize("name", SINGLE_LABEL)
def test_rank_matches_sentence_transformers(checkpoint, name):
    path = checkpoint(name)
    documents = builders.DOCUMENTS + [builders.long_document(5 + 9 * k, seed=k) for k in range(8)]
    for query in builders.QUERIES[:3]:
        ref = cross_encoder(path, 64).rank(query, documents, batch_size=4)
        got = MLXCrossEncoder(path, max_length=64).rank(query, documents, batch_size=7)
        report(f"{name} rank {query!r}", assert_ranks_equal(got, ref, ATOL))
    top = MLXCrossEncoder(path, max_length=64).rank(query, documents, top_k=3, return_documents=True)
    assert [r["corpus_id"] for r in top] == [r["corpus_id"] for r in got[:3]]
    assert all(r["text"] == documents[r["corpus_id"]] for r in top)


# -- float16 / bfloat16 --------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("name", list(TINY))
def test_half_precision_scores(checkpoint, name, dtype):
    path, pairs = checkpoint(name), builders.pairs()
    ref = cross_encoder(path, 128).predict(pairs, batch_size=16)
    got = MLXCrossEncoder(path, max_length=128, dtype=dtype).predict(pairs, batch_size=6)
    assert got.dtype == np.float32 and np.isfinite(got).all()
    diff = float(np.abs(got - ref).max())
    report(f"{name} {dtype} predict", diff)
    assert diff < HALF_ATOL


def separated_documents(path, query: str) -> list[str]:
    """Documents whose float32 (sentence-transformers) scores for ``query`` are ORDER_MARGIN apart, best first,
    from a pool of mixed lengths. Random tiny models score many documents within bfloat16's error (~0.003-0.006
    here) of each other; this keeps the candidates whose top-10 order is well defined at half precision."""
    pool = builders.DOCUMENTS + [builders.long_document(2 + 2 * k, seed=k) for k in range(56)]
    scores = cross_encoder(path, 128).predict([(query, d) for d in pool], batch_size=32)
    chosen = []
    for i in np.argsort(-scores, kind="stable"):
        if not chosen or scores[chosen[-1]] - scores[i] >= ORDER_MARGIN:
            chosen.append(int(i))
    return [pool[i] for i in chosen]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("name", SINGLE_LABEL)
def test_half_precision_top10_order(checkpoint, name, dtype):
    path, query = checkpoint(name), "bm25"
    documents = separated_documents(path, query)
    assert len(documents) >= 11, "scores not spread enough for a meaningful top-10 order"
    documents = documents[::-1]  # the order must come from the scores, not from the input
    ref = cross_encoder(path, 128).rank(query, documents, top_k=10)
    got = MLXCrossEncoder(path, max_length=128, dtype=dtype).rank(query, documents, top_k=10, batch_size=4)
    report(f"{name} {dtype} top-10", assert_ranks_equal(got, ref, HALF_ATOL))


# -- quantized -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("arch", list(QUANT))
def test_quantized_scores_correlate(checkpoint, arch, bits):
    path, pairs = checkpoint(arch, QUANT), long_pairs()
    ref = MLXCrossEncoder(path, max_length=512).predict(pairs)
    assert np.abs(ref - cross_encoder(path, 512).predict(pairs)).max() < ATOL
    quant = MLXCrossEncoder(path, max_length=512, quantize=bits)
    quantized = [p for p, m in quant.model.named_modules() if isinstance(m, nn.QuantizedLinear)]
    assert quantized and not any(p.startswith(quant.model.head_prefixes) for p in quantized)  # head stays float
    got = quant.predict(pairs, batch_size=8)
    rho = spearmanr(got, ref).statistic
    print(f"\n{arch} {bits}-bit: spearman {rho:.4f}, max abs diff {np.abs(got - ref).max():.3g}")
    assert np.isfinite(got).all()
    assert rho > 0.9


# -- configuration details -----------------------------------------------------------------------------
def test_xlmr_position_ids_skip_padding():
    ids = mx.array([[0, 7, 8, 2, 1, 1], [0, 9, 2, 2, 5, 2]])
    assert position_ids_from_input_ids(ids, 1).tolist() == [[2, 3, 4, 5, 1, 1], [2, 3, 4, 5, 6, 7]]


def test_xlmr_limits_and_token_types(checkpoint):
    one_type = MLXCrossEncoder(checkpoint("xlmr-1"))
    assert one_type.model.max_positions == 128  # 130 embeddings - pad id 1 - 1
    assert one_type.max_length == 128
    assert not one_type.model.uses_token_type_ids
    assert MLXCrossEncoder(checkpoint("xlmr-3")).model.uses_token_type_ids


def test_modernbert_attention_masks():
    half = 4
    for length in range(1, 13):
        mask = np.ones((2, length), dtype=np.int32)
        mask[1, (length + 1) // 2 :] = 0
        masks = attention_masks(mx.array(mask), half, mx.float32)
        pos = np.arange(length)
        keep = (mask[:, None, None, :] == 1) & (np.abs(pos[:, None] - pos[None, :]) <= half)[None, None]
        local = np.broadcast_to(np.array(masks["sliding_attention"]), keep.shape)
        assert np.array_equal(local == 0, keep), length
        assert np.array_equal(np.array(masks["full_attention"])[:, 0, 0] == 0, mask == 1)


def test_modernbert_transformers4_config(checkpoint, tmp_path):
    """Hub checkpoints saved with transformers 4 carry global_attn_every_n_layers / global_rope_theta /
    local_rope_theta instead of layer_types / rope_parameters; both must give the same model."""
    src = checkpoint("modernbert-3-mean")
    legacy = tmp_path / "legacy"
    shutil.copytree(src, legacy)
    config = json.loads((legacy / "config.json").read_text())
    assert config["layer_types"] == ["full_attention", "sliding_attention"] * 2
    del config["layer_types"], config["rope_parameters"]
    config.update(global_attn_every_n_layers=2, global_rope_theta=80_000.0, local_rope_theta=20_000.0)
    (legacy / "config.json").write_text(json.dumps(config))

    args = get_model_module(config).ModelArgs.from_dict(config)
    assert args.layer_types == ["full_attention", "sliding_attention"] * 2
    assert (args.rope_theta("full_attention"), args.rope_theta("sliding_attention")) == (80_000.0, 20_000.0)
    pairs = builders.pairs()
    got = MLXCrossEncoder(legacy).predict(pairs)
    assert np.array_equal(got, MLXCrossEncoder(src).predict(pairs))
    assert np.abs(got - hf_logits(legacy, pairs, max_length=512)).max() < ATOL


# -- real widths ---------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name", list(WIDE))
def test_real_width_parity(checkpoint, name):
    path, pairs = checkpoint(name, WIDE), long_pairs()
    mlx = MLXCrossEncoder(path, max_length=512)
    lengths = mlx.token_counts(pairs)
    assert lengths.max() > 300 and lengths.min() < 20  # padding-heavy, longer than ModernBERT's window
    # batch_size 8: the longest pair shares its batch with pairs of ~45-210 tokens
    got = mlx.predict(pairs, batch_size=8, activation_fn="identity")
    diff = float(np.abs(got - hf_logits(path, pairs, max_length=512)[:, 0]).max())
    report(f"{name} logits", diff)
    assert diff < ATOL

    st = cross_encoder(path, 512)
    ref = st.predict(pairs, batch_size=16)
    diff = float(np.abs(mlx.predict(pairs, batch_size=8) - ref).max())
    report(f"{name} predict", diff)
    assert diff < ATOL

    query, documents = pairs[-3][0], [d for _, d in pairs[:8]] + [d for _, d in pairs[-3:]]
    ranked = assert_ranks_equal(mlx.rank(query, documents, batch_size=4), st.rank(query, documents), ATOL)
    report(f"{name} rank", ranked)
