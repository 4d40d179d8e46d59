"""Batches padded to a multiple of GPU_LENGTH_MULTIPLE tokens (what MLXCrossEncoder does on a GPU, so that MLX's
CUDA backend meets few attention shapes) score exactly as batches padded to their longest pair, for every encoder
architecture: the padding is masked."""

from __future__ import annotations

import builders
import numpy as np
import pytest

from mlx_cross_encoder import MLXCrossEncoder
from mlx_cross_encoder.cross_encoder import GPU_LENGTH_MULTIPLE

BUILDERS = {
    "bert": builders.bert_cross_encoder,
    "xlm_roberta": builders.xlm_roberta_cross_encoder,
    "modernbert": builders.modernbert_cross_encoder,
}


@pytest.mark.parametrize("arch", sorted(BUILDERS))
def test_padding_to_a_length_multiple_keeps_scores(tmp_path, arch):
    directory = BUILDERS[arch](tmp_path / arch)
    pairs = builders.pairs(12)
    model = MLXCrossEncoder(directory)
    model.length_multiple = 1
    tight = model.predict(pairs, batch_size=5, activation_fn="identity")
    model.length_multiple = GPU_LENGTH_MULTIPLE
    ids, _, _ = model._collate(model.tokenize(pairs[:5]))
    assert ids.shape[1] % GPU_LENGTH_MULTIPLE == 0 or ids.shape[1] == model.max_length
    assert ids.shape[1] > max(len(e.ids) for e in model.tokenize(pairs[:5]))  # really padded further
    padded = model.predict(pairs, batch_size=5, activation_fn="identity")
    np.testing.assert_allclose(padded, tight, atol=1e-5, rtol=0)
