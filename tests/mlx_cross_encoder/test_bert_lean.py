"""BERT's lean inference forward (``models.bert_lean``: position slice + one compiled embedding sum, one compiled mask,
residual adds folded into the dense layers' addmm, compiled score head), which ``MLXCrossEncoder`` prepares where
attention is fused (bf16/fp16 on a GPU). Here (the CPU) it is prepared explicitly, on a BERT whose biases are all
non-zero (transformers initialises them to 0, which would make the fold trivially exact):

* scores equal the plain forward's and transformers' (2 token types; 3 types take the gathered sum);
* each part alone (lean inputs, folded biases) equals the plain forward;
* the graph has fewer ops: no arange, one gather (the words), 2 adds less per layer;
* a replaced bias / module (an update, LoRA) and training mode take the plain path (stale derived arrays unused);
* LoRA layers are never folded.
"""

from __future__ import annotations

import re
from collections import Counter

import builders
import mlx.core as mx
import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from mlx_cross_encoder import MLXCrossEncoder, gpu_chunks
from mlx_cross_encoder.models import bert, bert_lean


def bert_with_biases(directory, **config):
    """A tiny BERT cross-encoder whose every bias (and LayerNorm beta) is random, saved for both frameworks."""
    path = builders.bert_cross_encoder(directory, num_hidden_layers=3, **config)
    model = AutoModelForSequenceClassification.from_pretrained(path)
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.5)
    model.save_pretrained(path, safe_serialization=True)
    return path


def reference_logits(path, pairs) -> np.ndarray:
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    batch = tok([q for q, _ in pairs], [d for _, d in pairs], padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        return model(**batch).logits[:, 0].numpy()


def lean_reranker(path) -> MLXCrossEncoder:
    reranker = MLXCrossEncoder(path, activation_fn="identity")
    assert bert.fuse_projections(reranker.model) > 0
    assert bert_lean.prepare(reranker.model)
    return reranker


def plain_scores(reranker, pairs, monkeypatch) -> np.ndarray:
    with monkeypatch.context() as m:
        m.setattr(bert_lean, "LEAN_INPUTS", False)
        m.setattr(bert_lean, "FOLD_BIAS", False)
        m.setattr(bert, "FUSE_QKV", False)
        m.setattr(gpu_chunks, "COMPILED_HEAD", False)
        return reranker.predict(pairs, batch_size=4)


@pytest.mark.parametrize("types", [2, 3])
def test_lean_scores_equal_plain_and_transformers(tmp_path, monkeypatch, types):
    path = bert_with_biases(tmp_path / "bert", type_vocab_size=types)
    pairs = builders.pairs(9)
    reranker = lean_reranker(path)
    assert bert_lean.current(reranker.model) is not None
    lean = reranker.predict(pairs, batch_size=4)
    np.testing.assert_allclose(lean, plain_scores(reranker, pairs, monkeypatch), rtol=0, atol=2e-6)
    np.testing.assert_allclose(lean, reference_logits(path, pairs), rtol=0, atol=1e-5)


@pytest.mark.parametrize("lean_inputs,fold", [(True, False), (False, True)])
def test_each_part_alone_equals_plain(tmp_path, monkeypatch, lean_inputs, fold):
    path = bert_with_biases(tmp_path / "bert")
    pairs = builders.pairs(7)
    reranker = lean_reranker(path)
    plain = plain_scores(reranker, pairs, monkeypatch)
    monkeypatch.setattr(bert_lean, "LEAN_INPUTS", lean_inputs)
    monkeypatch.setattr(bert_lean, "FOLD_BIAS", fold)
    np.testing.assert_allclose(reranker.predict(pairs, batch_size=4), plain, rtol=0, atol=2e-6)


def graph_ops(model, tmp_path) -> Counter:
    ids = mx.array(np.arange(2 * 12, dtype=np.int32).reshape(2, 12) % 20 + 5)
    types = mx.array((np.arange(12) >= 6).astype(np.int32)[None].repeat(2, 0))
    out = model(ids, mx.ones((2, 12), dtype=mx.int32), types)
    dot = tmp_path / "graph.dot"
    mx.export_to_dot(str(dot), out)
    return Counter(re.findall(r'label ="([A-Za-z]+)"', dot.read_text()))


def test_lean_graph_has_fewer_ops(tmp_path, monkeypatch):
    reranker = lean_reranker(bert_with_biases(tmp_path / "bert"))
    lean = graph_ops(reranker.model, tmp_path)
    monkeypatch.setattr(bert_lean, "LEAN_INPUTS", False)
    monkeypatch.setattr(bert_lean, "FOLD_BIAS", False)
    plain = graph_ops(reranker.model, tmp_path)
    assert plain["Arange"] == 1 and lean["Arange"] == 0  # positions: a slice of the table
    assert plain["Gather"] == 3 and lean["Gather"] == 1  # words only; token types selected in the compiled sum
    layers = len(reranker.model.bert.encoder.layer)
    assert plain["Add"] - lean["Add"] >= 2 * layers + 2  # residual adds folded; embedding adds compiled
    assert lean["AddMM"] == plain["AddMM"]  # the same matmuls (the residual rides in as C)


def test_replaced_bias_takes_the_plain_path(tmp_path, monkeypatch):
    path = bert_with_biases(tmp_path / "bert")
    pairs = builders.pairs(6)
    reranker = lean_reranker(path)
    layer = reranker.model.bert.encoder.layer[1]
    layer.output.dense.bias = layer.output.dense.bias + 0.25  # what an update does: a new array
    assert bert_lean.current(reranker.model) is None
    plain = MLXCrossEncoder(path, activation_fn="identity")
    other = plain.model.bert.encoder.layer[1]
    other.output.dense.bias = other.output.dense.bias + 0.25
    np.testing.assert_allclose(reranker.predict(pairs), plain.predict(pairs), rtol=0, atol=2e-6)


def test_training_mode_takes_the_plain_path(tmp_path):
    reranker = lean_reranker(bert_with_biases(tmp_path / "bert"))
    reranker.model.train()
    assert bert_lean.current(reranker.model) is None
    reranker.model.eval()
    assert bert_lean.current(reranker.model) is not None


def test_lora_layers_are_not_folded(tmp_path):
    from mlx_cross_encoder.training.lora import apply_lora, lora_target_paths

    reranker = lean_reranker(bert_with_biases(tmp_path / "bert"))
    apply_lora(reranker.model, lora_target_paths(reranker.model, ("dense",)), rank=2, scale=2.0)
    assert bert_lean.current(reranker.model) is None  # replaced modules: the derived arrays are not used
    bert.fuse_projections(reranker.model)  # query/key/value stay plain Linear layers: fused
    assert not bert_lean.prepare(reranker.model)  # LoRA dense layers: nothing derived
    assert bert_lean.current(reranker.model) is None
