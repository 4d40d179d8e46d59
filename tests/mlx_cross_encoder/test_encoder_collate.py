"""MLXCrossEncoder's vectorised batch collation (``_collate``: ids, attention mask, token types filled in one numpy
step) gives exactly what the tokenizer's own padding gives (the independent reference: ``tokenizers``' right
padding to the same width), for every encoder architecture, with and without the GPU's length multiple; and the
planner's lengths (``len(encoding)``) are the token counts."""

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


def _reference(model: MLXCrossEncoder, pairs, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ids, mask, token types from the tokenizer padding every pair to ``width`` itself."""
    tokenizer = model.tokenizer
    tokenizer.enable_padding(length=width, pad_id=model.pad_token_id)
    try:
        encodings = tokenizer.encode_batch(pairs)
    finally:
        tokenizer.no_padding()
    return (
        np.array([e.ids for e in encodings], dtype=np.int32),
        np.array([e.attention_mask for e in encodings], dtype=np.int32),
        np.array([e.type_ids for e in encodings], dtype=np.int32),
    )


@pytest.mark.parametrize("multiple", [1, GPU_LENGTH_MULTIPLE])
@pytest.mark.parametrize("arch", sorted(BUILDERS))
def test_collate_equals_the_tokenizers_own_padding(tmp_path, arch, multiple):
    model = MLXCrossEncoder(BUILDERS[arch](tmp_path / arch))
    model.length_multiple = multiple
    pairs = [(q, d + " river" * (i % 5)) for i, (q, d) in enumerate(builders.pairs(9))]
    encodings = model.tokenize(pairs)
    ids, mask, types = model._collate(encodings)
    ref_ids, ref_mask, ref_types = _reference(model, pairs, ids.shape[1])
    longest = max(len(e.ids) for e in encodings)
    assert ids.shape[1] == min(-(-longest // multiple) * multiple, max(longest, model.max_length))
    np.testing.assert_array_equal(np.array(ids), ref_ids)
    np.testing.assert_array_equal(np.array(mask), ref_mask)
    if model.model.uses_token_type_ids:
        assert ref_types.any()  # pairs: the second segment has type 1, so a mix-up would show
        np.testing.assert_array_equal(np.array(types), ref_types)
    else:
        assert types is None
    assert [len(e) for e in encodings] == [len(e.ids) for e in encodings]
