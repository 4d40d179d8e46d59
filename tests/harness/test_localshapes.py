"""The random-init shape checkpoints (harness.localshapes) load in MLX and in sentence-transformers with the same
scores, at a reduced size (the recipes' shape tables patched small; the code path is the recipes' own)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sentence_transformers import CrossEncoder

from harness import localshapes
from mlx_cross_encoder import MLXCrossEncoder

PAIRS = [
    ("what is a cat", "a cat is a small animal that purrs"),
    ("how tall is everest", "mount everest is 8849 metres high, the tallest mountain"),
    ("x", "y z"),
]
SMALL = dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, intermediate_size=96)


@pytest.mark.parametrize(
    "builder, table",
    [
        ("build_bert_large_shape", "BERT_LARGE"),
        ("build_xlm_roberta_large_shape", "XLM_ROBERTA_LARGE"),
        ("build_modernbert_base_shape", "MODERNBERT_BASE"),
    ],
)
def test_shape_checkpoint_scores_match_sentence_transformers(tmp_path, monkeypatch, builder, table):
    small = {**getattr(localshapes, table), **SMALL}
    if "vocab_size" in small:
        small["vocab_size"] = 31_000  # the WordPiece ids (< 30,522) still fit
    monkeypatch.setattr(localshapes, table, small)
    out = getattr(localshapes, builder)(tmp_path / builder)
    ours = MLXCrossEncoder(out, max_length=512).predict(PAIRS, activation_fn="identity")
    ref = CrossEncoder(str(out), max_length=512, activation_fn=torch.nn.Identity()).predict(PAIRS)
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=0)
