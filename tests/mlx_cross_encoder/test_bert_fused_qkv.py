"""BERT-style attention's fused query/key/value projection (``models.bert.fuse_projections``, applied by
``MLXCrossEncoder`` at load where attention is fused: bf16/fp16 on a GPU; the H200's MiniLM forward is bound by
kernel launches). Here (the CPU) it is applied explicitly:

* scores equal the three-projection path's and transformers' (BERT and XLM-RoBERTa);
* the parameters keep their names, shapes and values, and no array is added to them;
* a replaced weight (a training update, a reload) is used: the fused arrays are not read once stale;
* in training mode gradients reach query/key/value exactly as without fusing;
* where attention is not fused (the CPU) MLXCrossEncoder keeps three projections.
"""

from __future__ import annotations

import builders
import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification

from mlx_cross_encoder import MLXCrossEncoder
from mlx_cross_encoder import cross_encoder as cross_encoder_module
from mlx_cross_encoder.models import bert

BUILDERS = {"bert": builders.bert_cross_encoder, "xlm_roberta": builders.xlm_roberta_cross_encoder}


def reference_logits(path, pairs) -> np.ndarray:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    batch = tok([q for q, _ in pairs], [d for _, d in pairs], padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        return model(**batch).logits[:, 0].numpy()


def attentions(reranker) -> list:
    return [m for m in reranker.model.modules() if isinstance(m, bert.SelfAttention)]


def fused_reranker(path, **options) -> MLXCrossEncoder:
    reranker = MLXCrossEncoder(path, **options)
    assert bert.fuse_projections(reranker.model) == len(attentions(reranker)) > 0
    return reranker


@pytest.mark.parametrize("arch", sorted(BUILDERS))
def test_fused_projection_scores_equal_plain_and_transformers(tmp_path, arch, monkeypatch):
    path = BUILDERS[arch](tmp_path / arch)
    pairs = builders.pairs(9)
    reranker = fused_reranker(path, activation_fn="identity")
    fused = reranker.predict(pairs, batch_size=4)
    monkeypatch.setattr(bert, "FUSE_QKV", False)
    plain = reranker.predict(pairs, batch_size=4)
    np.testing.assert_allclose(fused, plain, rtol=0, atol=1e-6)
    np.testing.assert_allclose(fused, reference_logits(path, pairs), rtol=0, atol=1e-5)


def test_parameters_unchanged_by_fusing(tmp_path, monkeypatch):
    path = builders.bert_cross_encoder(tmp_path / "bert")
    fused = fused_reranker(path)
    plain = MLXCrossEncoder(path)
    assert not any(a._fused for a in attentions(plain))
    got = dict(nn.utils.tree_flatten(fused.model.parameters()))
    want = dict(nn.utils.tree_flatten(plain.model.parameters()))
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert got[key].shape == value.shape, key
        np.testing.assert_array_equal(np.array(got[key]), np.array(value), err_msg=key)


def test_replaced_weight_is_used_not_the_stale_fused_one(tmp_path):
    path = builders.bert_cross_encoder(tmp_path / "bert")
    pairs = builders.pairs(6)
    reranker = fused_reranker(path, activation_fn="identity")
    before = reranker.predict(pairs)
    layer = reranker.model.bert.encoder.layer[0].attention.self_attn
    # what an optimizer update does: a new array in the module
    layer.value.weight = mx.random.normal(layer.value.weight.shape, key=mx.random.key(0))
    after = reranker.predict(pairs)
    layer._fused = None  # the three projections with the new weight
    expected = reranker.predict(pairs)
    assert np.abs(before - expected).max() > 1e-4  # the change matters
    np.testing.assert_allclose(after, expected, rtol=0, atol=1e-6)


def test_training_gradients_reach_the_projections(tmp_path):
    path = builders.bert_cross_encoder(tmp_path / "bert")
    reranker = fused_reranker(path)
    model = reranker.model
    ids, mask, types = reranker._collate(reranker.tokenize(builders.pairs(4)))

    def projection_grads():
        model.train()
        _, grads = nn.value_and_grad(model, lambda: model(ids, mask, types).sum())()
        layer = grads["bert"]["encoder"]["layer"][0]["attention"]["self_attn"]
        return {n: np.array(layer[n]["weight"]) for n in ("query", "key", "value")}

    with_fused = projection_grads()
    for a in attentions(reranker):
        a._fused = None
    without = projection_grads()
    for name, grad in without.items():
        assert np.abs(grad).max() > 0, name
        np.testing.assert_allclose(with_fused[name], grad, rtol=1e-5, atol=1e-7, err_msg=name)


def test_unfused_attention_keeps_three_projections(tmp_path, monkeypatch):
    """On the CPU (attention not fused) MLXCrossEncoder does not fuse; where it is fused (a GPU in bf16) it does."""
    path = builders.bert_cross_encoder(tmp_path / "bert")
    assert not any(a._fused for a in attentions(MLXCrossEncoder(path)))
    calls = []
    monkeypatch.setattr(cross_encoder_module, "fuse_projections", lambda model: calls.append(model))
    monkeypatch.setattr(cross_encoder_module.mx, "default_device", lambda: cross_encoder_module.mx.gpu)
    monkeypatch.setattr(cross_encoder_module.mx.cuda, "is_available", lambda: True)
    for dtype, fused in (("float32", False), ("bfloat16", True), ("float16", True)):
        calls.clear()
        reranker = MLXCrossEncoder(path, dtype=dtype)
        assert (calls == [reranker.model]) is fused, dtype
