"""Tokenizing on a thread pool (``tokenizing.encode_in_threads``, used by MLXCrossEncoder and Qwen3Reranker for large
calls) gives exactly ``encode_batch``'s encodings, in input order, and the rerankers' scores do not change."""

from __future__ import annotations

import builders
import numpy as np
import pytest

from mlx_cross_encoder import MLXCrossEncoder, Qwen3Reranker, base, tokenizing


def _many_pairs(n: int) -> list[tuple[str, str]]:
    """n pairs with varied lengths (so that chunks differ and an order mix-up shows)."""
    mix = builders.pairs()
    return [(q, d + " river" * (i % 7)) for i, (q, d) in enumerate(mix * (n // len(mix) + 1))][:n]


def test_threads_give_encode_batch_encodings_in_order(tmp_path, monkeypatch):
    model = MLXCrossEncoder(builders.bert_cross_encoder(tmp_path / "bert"))
    pairs = _many_pairs(97)
    monkeypatch.setattr(tokenizing, "PARALLEL_TOKENIZE_MIN", 1)
    expected = model.tokenizer.encode_batch(pairs)
    got = tokenizing.encode_in_threads(model.tokenizer, pairs, threads=3)
    assert [e.ids for e in got] == [e.ids for e in expected]
    assert [e.type_ids for e in got] == [e.type_ids for e in expected]


def test_cross_encoder_and_llm_scores_unchanged_by_threaded_tokenization(tmp_path, monkeypatch):
    pairs = _many_pairs(40)
    encoder = MLXCrossEncoder(builders.bert_cross_encoder(tmp_path / "bert"))
    llm = Qwen3Reranker(builders.qwen3_causal_lm(tmp_path / "qwen"))
    monkeypatch.setenv("MLX_CROSS_ENCODER_TOKENIZE_THREADS", "1")
    one = encoder.predict(pairs, batch_size=8), llm.predict(pairs, batch_size=8)
    one_ids = llm.tokenize(pairs)
    monkeypatch.setenv("MLX_CROSS_ENCODER_TOKENIZE_THREADS", "3")
    monkeypatch.setattr(tokenizing, "PARALLEL_TOKENIZE_MIN", 1)
    assert llm.tokenize(pairs) == one_ids
    np.testing.assert_array_equal(encoder.predict(pairs, batch_size=8), one[0])
    np.testing.assert_array_equal(llm.predict(pairs, batch_size=8), one[1])


def test_default_threads_leave_spare_cores_on_large_hosts(monkeypatch):
    """Without the environment variable: every core up to 8; above 8 cores, ``TOKENIZE_SPARE_CORES`` are left to the
    threads beside the pool (never fewer than 8 threads); at most 16. The variable overrides it."""
    monkeypatch.delenv("MLX_CROSS_ENCODER_TOKENIZE_THREADS", raising=False)
    spare = tokenizing.TOKENIZE_SPARE_CORES
    for cores in (1, 2, 8, 9, 12, 16, 20, 64):
        monkeypatch.setattr(tokenizing.os, "cpu_count", lambda cores=cores: cores)
        threads = tokenizing.tokenize_threads()
        assert threads == (cores if cores <= 8 else min(16, max(8, cores - spare))), cores
        assert threads <= cores and (cores <= 8 or cores - threads >= min(spare, cores - 8)), cores
    monkeypatch.setenv("MLX_CROSS_ENCODER_TOKENIZE_THREADS", "5")
    assert tokenizing.tokenize_threads() == 5


def _pairs_with_literal_separators() -> list[tuple[str, str]]:
    """Varied pairs, some long enough to be truncated, some with a literal "[SEP]" in the query or the document (the
    tokenizer makes it the separator token: such rows do not follow the two-separator rule)."""
    long = builders.long_document(300)
    extra = [("what [SEP] river", "a bank"), ("river", "bank [SEP] of the [SEP] river"), ("[SEP]", long)]
    return _many_pairs(30) + [("river bank", long), (long, "river")] + extra


def test_derived_type_ids_equal_the_encodings_and_transformers(tmp_path, monkeypatch):
    from transformers import AutoTokenizer

    path = builders.bert_cross_encoder(tmp_path / "bert", max_position_embeddings=64)
    model = MLXCrossEncoder(path)
    sep = tokenizing.bert_pair_sep_id(model.tokenizer)
    assert sep == model.tokenizer.token_to_id("[SEP]") and model._type_rule == tokenizing.TypeIdRule(sep)
    pairs = _pairs_with_literal_separators()
    encodings = model.tokenizer.encode_batch(pairs)
    derived = tokenizing.TokenArrays.of(encodings, tokenizing.TypeIdRule(sep))
    read = tokenizing.TokenArrays.of(encodings, tokenizing.TypeIdRule())
    np.testing.assert_array_equal(derived.type_ids, read.type_ids)
    np.testing.assert_array_equal(derived.ids, read.ids)
    np.testing.assert_array_equal(derived.lengths, read.lengths)
    reference = AutoTokenizer.from_pretrained(path)(
        [q for q, _ in pairs], [d for _, d in pairs], truncation="longest_first", max_length=model.max_length
    )["token_type_ids"]
    np.testing.assert_array_equal(derived.type_ids, np.concatenate(reference))
    assert (derived.type_ids == 1).any() and (derived.type_ids == 0).any()
    monkeypatch.setattr(tokenizing, "DERIVE_TYPE_IDS", False)  # the knob reads the encodings' own
    np.testing.assert_array_equal(
        tokenizing.TokenArrays.of(encodings, tokenizing.TypeIdRule(sep)).type_ids, read.type_ids
    )


class _IdsOnly:
    """An encoding whose ``type_ids`` cannot be read: what a derivation must do without."""

    def __init__(self, encoding):
        self.ids = encoding.ids

    @property
    def type_ids(self):
        raise AssertionError("type_ids read from the encoding")


def test_derived_type_ids_do_not_read_the_encodings_type_ids(tmp_path):
    path = builders.bert_cross_encoder(tmp_path / "bert", max_position_embeddings=64)
    model = MLXCrossEncoder(path)
    sep = tokenizing.bert_pair_sep_id(model.tokenizer)
    encodings = model.tokenizer.encode_batch(_many_pairs(12))  # BERT's template: two [SEP] in every row
    derived = tokenizing.TokenArrays.of([_IdsOnly(e) for e in encodings], tokenizing.TypeIdRule(sep))
    np.testing.assert_array_equal(derived.type_ids, [t for e in encodings for t in e.type_ids])


def test_pair_separator_only_for_berts_template(tmp_path):
    from tokenizers import processors

    model = MLXCrossEncoder(builders.bert_cross_encoder(tmp_path / "bert"))
    tokenizer = model.tokenizer
    sep, cls = tokenizer.token_to_id("[SEP]"), tokenizer.token_to_id("[CLS]")
    assert tokenizing.bert_pair_sep_id(tokenizer) == sep
    tokenizer.post_processor = processors.BertProcessing(("[SEP]", sep), ("[CLS]", cls))
    assert tokenizing.bert_pair_sep_id(tokenizer) == sep
    for pair in ("[CLS] $A [SEP] $B:0 [SEP]:1", "[CLS] $A [SEP] [SEP] $B:1 [SEP]:1", "[CLS] $A [CLS] $B:1 [CLS]:1"):
        tokenizer.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair=pair, special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
        )
        assert tokenizing.bert_pair_sep_id(tokenizer) is None, pair
    tokenizer.post_processor = processors.RobertaProcessing(("</s>", sep), ("<s>", cls))
    assert tokenizing.bert_pair_sep_id(tokenizer) is None
    xlmr = MLXCrossEncoder(builders.xlm_roberta_cross_encoder(tmp_path / "xlmr"))
    assert xlmr._type_rule is None  # one token type: none asked for


@pytest.mark.parametrize("order", ["contiguous", "shuffled", "one"])
def test_padded_rows_equal_per_row_padding(tmp_path, order):
    model = MLXCrossEncoder(builders.bert_cross_encoder(tmp_path / "bert", max_position_embeddings=64))
    encodings = model.tokenizer.encode_batch(_pairs_with_literal_separators())
    tokens = tokenizing.TokenArrays.of(encodings, tokenizing.TypeIdRule())
    rows = {"contiguous": np.arange(5, 19), "shuffled": np.random.default_rng(0).permutation(len(encodings))[:12]}
    rows = rows.get(order, np.array([3]))
    width = int(tokens.lengths[rows].max()) + 7
    ids, mask, types = tokens.padded(rows, width, pad_id=99)
    for k, row in enumerate(rows.tolist()):
        e, n = encodings[row], len(encodings[row].ids)
        np.testing.assert_array_equal(ids[k], e.ids + [99] * (width - n))
        np.testing.assert_array_equal(types[k], e.type_ids + [0] * (width - n))
        np.testing.assert_array_equal(mask[k], [1] * n + [0] * (width - n))
    with pytest.raises(ValueError, match="narrower"):
        tokens.padded(rows, width - 8, pad_id=0)


def test_worker_processes_give_the_threads_tokens(tmp_path, monkeypatch):
    from mlx_cross_encoder import tokenize_procs

    model = MLXCrossEncoder(builders.bert_cross_encoder(tmp_path / "bert", max_position_embeddings=64))
    pairs = _pairs_with_literal_separators() * 3
    bounds = base.stream_bounds(len(pairs), 16, 40)
    threaded = [piece() for piece in tokenizing.encode_pieces(model.tokenizer, pairs, bounds, model._type_rule, 2)]
    monkeypatch.setenv(tokenizing.TOKENIZE_PROCESSES_ENV_VAR, "2")  # the environment switches it on
    monkeypatch.setattr(tokenizing, "_array_encoder", None)  # the thread pool's task would fail: not used
    try:
        pieces = tokenizing.encode_pieces(model.tokenizer, pairs, bounds, model._type_rule, 2)
        assert id(model.tokenizer) in tokenize_procs._POOLS
        for got, want in zip([piece() for piece in pieces], threaded, strict=True):
            for name in ("ids", "lengths", "type_ids"):
                np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
    finally:
        tokenize_procs.shutdown()
