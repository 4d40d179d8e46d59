"""MLXCrossEncoder's chunked, pipelined scoring (``chunk_tokens``, on by default on a GPU; forced on here):

* scores equal the plain path's (no chunks, nothing prepared ahead): exactly when only the overlap differs, and
  within float32 rounding when a batch is split into chunks padded to their own widths; for every encoder
  architecture, for one-batch calls (the harness's offline and single-query calls) and multi-batch calls;
* a one-batch call is tokenized piece by piece (each piece when it is prepared), and the next piece is prepared
  while the caller still holds the current one: the overlap really happens;
* chunks hold at most ``chunk_tokens`` padded tokens, the fewest such chunks, evenly sized;
* ``encode_arrays`` (fast tokenizer path, arrays built per thread) gives ``encode_batch``'s ids and type ids,
  truncation included;
* chunks bound MLX's peak memory below the one-piece batch's.
"""

from __future__ import annotations

import threading

import builders
import mlx.core as mx
import numpy as np
import pytest

from mlx_cross_encoder import MLXCrossEncoder, base, gpu_chunks, tokenizing
from mlx_cross_encoder import cross_encoder as cross_encoder_module

BUILDERS = {
    "bert": builders.bert_cross_encoder,
    "xlm_roberta": builders.xlm_roberta_cross_encoder,
    "modernbert": builders.modernbert_cross_encoder,
}


def varied_pairs(n: int) -> list[tuple[str, str]]:
    """n pairs of clearly different lengths (so that chunks have different widths and a row mix-up shows)."""
    return [(q, builders.long_document(3 + (7 * i) % 29, seed=i)) for i, (q, _) in enumerate(builders.pairs(n))]


def not_ahead(pieces, threaded):
    """``prepared_ahead`` without the host thread: each piece prepared when the loop reaches it."""
    return base.prepared_ahead(pieces, False)


@pytest.mark.parametrize("arch", sorted(BUILDERS))
def test_chunked_pipelined_scores_equal_the_plain_path(tmp_path, arch, monkeypatch):
    model = MLXCrossEncoder(BUILDERS[arch](tmp_path / arch), chunk_tokens=None)
    data = varied_pairs(23)
    plain_one = model.predict(data, batch_size=len(data), activation_fn="identity")
    plain_many = model.predict(data, batch_size=8, activation_fn="identity")

    monkeypatch.setattr(base, "STREAM_ROWS", 6)
    monkeypatch.setattr(cross_encoder_module, "STREAM_ROWS", 6)
    model.chunk_tokens = 60  # a few rows per chunk
    assert len(model._pieces(data, len(data), None)) == 4  # streamed: 23 pairs in pieces of 6
    chunks = [c for piece in model._pieces(data, len(data), None) for c in piece()]
    assert len(chunks) > 4 and sorted(np.concatenate([rows for rows, _ in chunks]).tolist()) == list(range(23))
    one = model.predict(data, batch_size=len(data), activation_fn="identity")
    many = model.predict(data, batch_size=8, activation_fn="identity")
    with monkeypatch.context() as patch:
        patch.setattr(cross_encoder_module, "prepared_ahead", not_ahead)
        np.testing.assert_array_equal(model.predict(data, batch_size=len(data), activation_fn="identity"), one)
        np.testing.assert_array_equal(model.predict(data, batch_size=8, activation_fn="identity"), many)
    np.testing.assert_allclose(one, plain_one, atol=1e-5, rtol=0)
    np.testing.assert_allclose(many, plain_many, atol=1e-5, rtol=0)
    np.testing.assert_allclose(one, plain_many, atol=1e-5, rtol=0)


def test_one_batch_call_is_tokenized_piece_by_piece(tmp_path, monkeypatch):
    """Without ``TOKENIZE_AHEAD``: each piece tokenized when it is prepared (and a planned call all at once)."""
    model = MLXCrossEncoder(builders.bert_cross_encoder(tmp_path / "bert"), chunk_tokens=10_000)
    monkeypatch.setattr(cross_encoder_module, "STREAM_ROWS", 5)
    monkeypatch.setattr(tokenizing, "TOKENIZE_AHEAD", False)
    seen: list[int] = []
    real = tokenizing.encode_arrays

    def counting(tokenizer, inputs, *args, **kwargs):
        seen.append(len(inputs))
        return real(tokenizer, inputs, *args, **kwargs)

    monkeypatch.setattr(tokenizing, "encode_arrays", counting)
    monkeypatch.setattr(cross_encoder_module, "encode_arrays", counting)
    data = varied_pairs(12)
    pieces = model._pieces(data, 12, None)
    assert seen == []  # nothing tokenized before a piece is prepared
    pieces[0]()
    assert seen == [4]  # 12 pairs in the fewest even pieces of at most 5
    model.predict(data, batch_size=12)
    assert seen == [4, 4, 4, 4]
    seen.clear()
    model.predict(data, batch_size=4)  # several planned batches: the planner needs every length first
    assert seen == [12]


class RecordingTokenizer:
    """A tokenizer that records every input it encodes (``encode_batch_fast``), else the real one."""

    def __init__(self, inner, expected: int):
        self.inner, self.encoded, self.expected = inner, [], expected
        self.all_done, self.lock = threading.Event(), threading.Lock()

    def encode_batch_fast(self, inputs):
        out = self.inner.encode_batch_fast(inputs)
        with self.lock:
            self.encoded.extend(inputs)
            if len(self.encoded) >= self.expected:
                self.all_done.set()
        return out

    def __getattr__(self, name):
        return getattr(self.inner, name)


def streamed_model(tmp_path, monkeypatch, rows: int, task_rows: int, threads: int) -> MLXCrossEncoder:
    """A tiny BERT whose one-batch calls stream in pieces of ``rows`` pairs, tokenized in tasks of ``task_rows``
    pairs on ``threads`` threads (parallel from 4 pairs)."""
    monkeypatch.setattr(cross_encoder_module, "STREAM_ROWS", rows)
    monkeypatch.setattr(tokenizing, "PARALLEL_TOKENIZE_MIN", 4)
    monkeypatch.setattr(tokenizing, "TOKENIZE_CHUNK_MIN", task_rows)
    monkeypatch.setenv("MLX_CROSS_ENCODER_TOKENIZE_THREADS", str(threads))
    return MLXCrossEncoder(builders.bert_cross_encoder(tmp_path / "bert"), chunk_tokens=10_000)


def test_streamed_call_tokenizes_every_piece_ahead_in_the_pool(tmp_path, monkeypatch):
    """``TOKENIZE_AHEAD`` (the default): a streamed call's tokenizer tasks all start with the call, before any piece
    is prepared, and each piece gets exactly its pairs' tokens (as ``encode_arrays`` of its slice)."""
    model = streamed_model(tmp_path, monkeypatch, rows=8, task_rows=2, threads=2)
    data = varied_pairs(30)
    real = model.tokenizer
    bounds = base.stream_bounds(30, cross_encoder_module.STREAM_FIRST_ROWS, 8)
    recording = RecordingTokenizer(real, len(data))
    model.tokenizer = recording
    pieces = model._pieces(data, 30, None)
    assert len(pieces) == len(bounds) - 1 == 4
    assert recording.all_done.wait(timeout=20), "the call's pairs were not tokenized before its pieces were asked for"
    assert sorted(recording.encoded) == sorted(data)
    for i, piece in enumerate(pieces):
        chunks = piece()
        rows = np.concatenate([r for r, _ in chunks])
        assert rows.tolist() == list(range(bounds[i], bounds[i + 1]))
        want = tokenizing.encode_arrays(real, data[bounds[i] : bounds[i + 1]], tokenizing.TypeIdRule(), threads=1)
        for r, (ids, mask, types) in chunks:
            for j, row in enumerate(r - bounds[i]):
                start, n = int(want.lengths[:row].sum()), int(want.lengths[row])
                np.testing.assert_array_equal(ids[j, :n], want.ids[start : start + n])
                np.testing.assert_array_equal(types[j, :n], want.type_ids[start : start + n])
                assert mask[j].sum() == n
    model.tokenizer = real
    np.testing.assert_allclose(
        model.predict(data, batch_size=30), MLXCrossEncoder(model.model_dir, chunk_tokens=None).predict(data), atol=1e-5
    )


def test_first_piece_is_spread_over_the_tokenizer_threads(tmp_path, monkeypatch):
    """``SPREAD_FIRST_PIECE``: the first piece of a streamed call is one task per thread (the GPU waits for it at
    every call); the later pieces keep tasks of ``TOKENIZE_CHUNK_MIN``; the tokens are the same."""
    model = streamed_model(tmp_path, monkeypatch, rows=8, task_rows=4, threads=3)
    monkeypatch.setattr(cross_encoder_module, "STREAM_FIRST_ROWS", 6)
    data = varied_pairs(30)
    real = model.tokenizer
    sizes: list[int] = []

    class Sizes(RecordingTokenizer):
        def encode_batch_fast(self, inputs):
            with self.lock:
                sizes.append(len(inputs))
            return super().encode_batch_fast(inputs)

    model.tokenizer = Sizes(real, len(data))
    pieces = model._pieces(data, 30, None)  # bounds 0, 6, 14, 22, 30
    got = [rows for piece in pieces for rows, _ in piece()]
    assert np.concatenate(got).tolist() == list(range(30))
    assert sorted(sizes) == [2, 2, 2] + [4] * 6  # first piece: 3 tasks of 2 (3 threads); then 3 pieces x 2 tasks of 4
    model.tokenizer = real
    np.testing.assert_allclose(
        model.predict(data, batch_size=30), MLXCrossEncoder(model.model_dir, chunk_tokens=None).predict(data), atol=1e-5
    )


def test_next_piece_is_prepared_while_the_current_one_is_consumed():
    started = threading.Event()

    def first():
        return "first"

    def second():
        started.set()
        return "second"

    with base.prepared_ahead([first, second], threaded=True) as pieces:
        assert next(pieces) == "first"
        # the consumer still holds "first": the second piece must be under way on the host thread already
        assert started.wait(timeout=60), "the next piece was not prepared ahead"
        assert next(pieces) == "second"
    started.clear()
    with base.prepared_ahead([first, second], threaded=False) as pieces:
        assert next(pieces) == "first"
        assert not started.is_set()  # not threaded: prepared only when asked for
        assert list(pieces) == ["second"]


def test_errors_of_a_piece_prepared_ahead_reach_the_caller():
    def broken():
        raise RuntimeError("tokenizer failed")

    with pytest.raises(RuntimeError, match="tokenizer failed"):
        with base.prepared_ahead([lambda: 1, broken], threaded=True) as pieces:
            list(pieces)


def fewest_chunks(width: int, rows: int, chunk_tokens: int) -> int:
    """The fewest contiguous chunks with at most ``chunk_tokens`` padded tokens each (a single row may exceed)."""
    per_chunk = max(1, chunk_tokens // width)
    return -(-rows // per_chunk)


@pytest.mark.parametrize("width", [1, 7, 32, 288, 512])
@pytest.mark.parametrize("rows", [1, 2, 5, 100, 1024])
@pytest.mark.parametrize("chunk_tokens", [1, 300, 8192, 32768])
def test_even_chunks_are_fewest_within_budget_and_even(width, rows, chunk_tokens):
    sizes = base.even_chunks(width, rows, chunk_tokens)
    assert sum(sizes) == rows and min(sizes) >= 1
    assert max(sizes) - min(sizes) <= 1
    assert all(size * width <= chunk_tokens or size == 1 for size in sizes)
    assert len(sizes) == fewest_chunks(width, rows, chunk_tokens)


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("arch", sorted(BUILDERS))
def test_encode_arrays_equal_encode_batch_with_truncation(tmp_path, arch, threads, monkeypatch):
    model = MLXCrossEncoder(BUILDERS[arch](tmp_path / arch), max_length=24)
    monkeypatch.setattr(tokenizing, "PARALLEL_TOKENIZE_MIN", 1)
    data = varied_pairs(40)
    reference = model.tokenizer.encode_batch(data)
    assert any(len(e.overflowing) for e in reference), "some pairs must be truncated here"
    got = tokenizing.encode_arrays(model.tokenizer, data, tokenizing.TypeIdRule(), threads=threads)
    assert got.lengths.tolist() == [len(e.ids) for e in reference]
    assert got.ids.tolist() == [i for e in reference for i in e.ids]
    assert got.type_ids.tolist() == [t for e in reference for t in e.type_ids]
    assert tokenizing.encode_arrays(model.tokenizer, data, threads=threads).type_ids is None


def test_chunks_bound_peak_memory(tmp_path, monkeypatch):
    """A 4-layer, 256-wide BERT over 64 long pairs as one batch: chunks of ~1/8 of its tokens peak far lower."""
    directory = builders.bert_cross_encoder(
        tmp_path / "wide", hidden_size=256, intermediate_size=1024, num_attention_heads=4, num_hidden_layers=4
    )
    monkeypatch.setenv("MLX_CROSS_ENCODER_CPU_STREAMS", "1")
    model = MLXCrossEncoder(directory, chunk_tokens=None)
    data = [(q, builders.long_document(100, seed=i)) for i, (q, _) in enumerate(builders.pairs(64))]
    whole_scores = model.predict(data, batch_size=64)
    whole = builders.peak_bytes(lambda: model.predict(data, batch_size=64))
    width = int(tokenizing.encode_arrays(model.tokenizer, data).lengths.max())
    model.chunk_tokens = 8 * width
    chunked_scores = model.predict(data, batch_size=64)
    chunked = builders.peak_bytes(lambda: model.predict(data, batch_size=64))
    np.testing.assert_allclose(chunked_scores, whole_scores, atol=1e-5, rtol=0)
    assert chunked < 0.5 * whole, (chunked, whole)


def test_chunk_tokens_option(tmp_path, monkeypatch):
    directory = builders.bert_cross_encoder(tmp_path / "bert")
    monkeypatch.setenv(base.CHUNK_TOKENS_ENV_VAR, "123")
    auto = MLXCrossEncoder(directory).chunk_tokens
    if mx.default_device() == mx.gpu:
        assert auto == 123  # the environment variable sets the GPU default
        monkeypatch.delenv(base.CHUNK_TOKENS_ENV_VAR)
        assert MLXCrossEncoder(directory).chunk_tokens == base.CHUNK_TOKEN_WORK // 32**2  # tiny BERT: hidden 32
    else:
        assert auto is None  # the CPU keeps its one-piece path (batches split over CPU streams)
    assert MLXCrossEncoder(directory, chunk_tokens=500).chunk_tokens == 500
    assert MLXCrossEncoder(directory, chunk_tokens=0).chunk_tokens is None
    with pytest.raises(ValueError, match="chunk_tokens"):
        MLXCrossEncoder(directory, chunk_tokens=-1)
    model = MLXCrossEncoder(directory, chunk_tokens=500)
    data = varied_pairs(9)
    assert len(model._pieces(data, 9, 10_000)) == 1  # a token budget: planned (all lengths first), not streamed


@pytest.mark.parametrize("value", ["lots", "-5", "1.5"])
def test_bad_chunk_tokens_environment_value_is_an_error_naming_it(tmp_path, monkeypatch, value):
    directory = builders.bert_cross_encoder(tmp_path / "bert")
    monkeypatch.setenv(base.CHUNK_TOKENS_ENV_VAR, value)
    with pytest.raises(ValueError, match=f"{base.CHUNK_TOKENS_ENV_VAR}.*{value!r}"):
        MLXCrossEncoder(directory)
    monkeypatch.setenv(base.CHUNK_TOKENS_ENV_VAR, " 0 ")
    assert MLXCrossEncoder(directory).chunk_tokens is None  # 0 = whole batches, blanks stripped
    monkeypatch.setenv("MLX_CROSS_ENCODER_TOKENIZE_THREADS", value)
    with pytest.raises(ValueError, match=f"MLX_CROSS_ENCODER_TOKENIZE_THREADS.*{value!r}"):
        tokenizing.tokenize_threads()


@pytest.mark.parametrize("n", [1, 5, 31, 100, 204, 256, 257, 1024, 1500])
@pytest.mark.parametrize(("first", "most"), [(32, 256), (256, 256), (1, 4), (300, 256)])
def test_stream_pieces_start_small_then_are_even(n, first, most):
    bounds = base.stream_bounds(n, first, most)
    sizes = np.diff(bounds).tolist()
    assert bounds[0] == 0 and bounds[-1] == n and min(sizes) >= 1  # every pair once, in order
    assert max(sizes) <= most
    if n <= most:
        assert sizes == [n]  # a call that fits one piece stays one piece
        return
    rest = sizes[1:] if first < most else sizes
    if first < most:
        assert sizes[0] == first  # the GPU starts after `first` pairs
    assert len(rest) == -(-(n - (first if first < most else 0)) // most)  # the fewest pieces after it ...
    assert max(rest) - min(rest) <= 1  # ... evenly sized


def test_streamed_call_with_a_small_first_piece_scores_as_the_plain_path(tmp_path, monkeypatch):
    model = MLXCrossEncoder(builders.bert_cross_encoder(tmp_path / "bert"), chunk_tokens=None)
    data = varied_pairs(23)
    plain = model.predict(data, batch_size=len(data), activation_fn="identity")
    monkeypatch.setattr(cross_encoder_module, "STREAM_FIRST_ROWS", 2)
    monkeypatch.setattr(cross_encoder_module, "STREAM_ROWS", 8)
    model.chunk_tokens = 10_000
    pieces = model._pieces(data, len(data), None)
    sizes = [len(np.concatenate([rows for rows, _ in piece()])) for piece in pieces]
    assert sizes == np.diff(base.stream_bounds(23, 2, 8)).tolist() == [2, 7, 7, 7]
    np.testing.assert_allclose(model.predict(data, batch_size=len(data), activation_fn="identity"), plain, atol=1e-5)


def modeled_chunk_bytes(rows, width, hidden, heads, dtype_bytes, fused) -> float:
    """MLX's live bytes for a chunk as base's constants describe them, written out independently."""
    scores = 0 if fused else base.LIVE_SCORE_TENSORS * rows * heads * width**2 * 4
    return rows * width * hidden * dtype_bytes * base.LIVE_WIDTHS + scores


@pytest.mark.parametrize("width", [32, 160, 288, 512])
@pytest.mark.parametrize("batch_rows", [1, 10, 100, 1024])
@pytest.mark.parametrize(("dtype_bytes", "fused"), [(2, True), (4, False), (4, True)])
@pytest.mark.parametrize(("hidden", "heads"), [(384, 12), (1024, 16)])
def test_memory_chunk_rows_are_the_most_within_the_batch_share(width, batch_rows, dtype_bytes, fused, hidden, heads):
    rows = base.memory_chunk_rows(
        width, batch_rows, hidden=hidden, heads=heads, dtype_bytes=dtype_bytes, fused_attention=fused
    )
    share = base.BATCH_WIDTHS * batch_rows * width * hidden * dtype_bytes
    floor = max(1, base.MIN_SPLIT_TOKENS // width)
    assert rows >= floor
    if rows > floor:  # above the floor: within the batch's share, and one more row would not be
        assert modeled_chunk_bytes(rows, width, hidden, heads, dtype_bytes, fused) <= share
        assert modeled_chunk_bytes(rows + 1, width, hidden, heads, dtype_bytes, fused) > share


def test_memory_bound_splits_a_one_chunk_batch_and_lowers_its_peak(tmp_path, monkeypatch):
    """A batch far below ``chunk_tokens``: only the memory bound splits it; same scores, lower MLX peak."""
    directory = builders.bert_cross_encoder(
        tmp_path / "wide", hidden_size=256, intermediate_size=1024, num_attention_heads=4, num_hidden_layers=4
    )
    monkeypatch.setenv("MLX_CROSS_ENCODER_CPU_STREAMS", "1")
    monkeypatch.setattr(base, "MIN_SPLIT_TOKENS", 1)
    model = MLXCrossEncoder(directory, chunk_tokens=10**9)
    data = [(q, builders.long_document(100, seed=i)) for i, (q, _) in enumerate(builders.pairs(48))]
    pieces = model._pieces(data, len(data), None)
    assert len(pieces) == 1 and len(pieces[0]()) > 1  # one streamed piece, split into several chunks
    bounded_scores = model.predict(data, batch_size=64)
    bounded = builders.peak_bytes(lambda: model.predict(data, batch_size=64))
    monkeypatch.setattr(base, "BATCH_WIDTHS", None)
    assert len(model._pieces(data, len(data), None)[0]()) == 1
    whole_scores = model.predict(data, batch_size=64)
    whole = builders.peak_bytes(lambda: model.predict(data, batch_size=64))
    np.testing.assert_allclose(bounded_scores, whole_scores, atol=1e-5, rtol=0)
    assert bounded < 0.75 * whole, (bounded, whole)


def test_chunking_describes_the_rule_that_runs(tmp_path, monkeypatch):
    directory = builders.bert_cross_encoder(tmp_path / "bert")
    assert MLXCrossEncoder(directory, chunk_tokens=0).chunking is None
    monkeypatch.setattr(cross_encoder_module, "STREAM_FIRST_ROWS", 3)
    monkeypatch.setattr(cross_encoder_module, "STREAM_ROWS", 12)
    monkeypatch.setattr(base, "BATCH_WIDTHS", 7.5)
    model = MLXCrossEncoder(directory, chunk_tokens=500)
    monkeypatch.setattr(base, "PREPARE_AHEAD", 3)
    monkeypatch.setattr(tokenizing, "TOKENIZE_AHEAD", False)
    assert model.chunking == {
        "chunk_tokens": 500,
        "batch_widths": 7.5,
        "stream_rows": [3, 12],
        "prepare_ahead": 3,
        "tokenize_chunk_min": tokenizing.TOKENIZE_CHUNK_MIN,
        "tokenize_ahead": False,
        "spread_first_piece": tokenizing.SPREAD_FIRST_PIECE,
        "cache_keep_bytes": cross_encoder_module.CACHE_KEEP_BYTES,
        "one_transfer": gpu_chunks.ONE_TRANSFER,
        "derived_type_ids": tokenizing.DERIVE_TYPE_IDS,
        "tokenize_processes": 0,
    }
    monkeypatch.setenv(tokenizing.TOKENIZE_PROCESSES_ENV_VAR, "3")
    assert model.chunking["tokenize_processes"] == 3
    data = varied_pairs(30)
    sizes = [len(np.concatenate([rows for rows, _ in piece()])) for piece in model._pieces(data, 30, None)]
    assert sizes == np.diff(base.stream_bounds(30, 3, 12)).tolist()  # the pieces follow what chunking says


@pytest.mark.parametrize("ahead", [1, 2, 3])
def test_pieces_are_prepared_that_many_ahead_and_yielded_in_order(ahead):
    started = [threading.Event() for _ in range(6)]
    release = threading.Event()

    def piece(i):
        def run():
            started[i].set()
            if i > 0:
                release.wait(timeout=60)  # later pieces finish only when told: order must not depend on speed
            return i

        return run

    with base.prepared_ahead([piece(i) for i in range(6)], threaded=True, ahead=ahead) as pieces:
        assert next(pieces) == 0
        for i in range(1, ahead + 1):  # while the consumer holds piece 0, the next `ahead` are under way at once
            assert started[i].wait(timeout=60), f"piece {i} was not started ahead"
        assert not started[ahead + 1].is_set()  # and no more than that
        release.set()
        assert list(pieces) == [1, 2, 3, 4, 5]


def test_predict_keeps_a_small_buffer_cache_and_empties_a_large_one(tmp_path, monkeypatch):
    model = MLXCrossEncoder(builders.bert_cross_encoder(tmp_path / "bert"))
    data = varied_pairs(16)
    mx.clear_cache()
    monkeypatch.setattr(cross_encoder_module, "CACHE_KEEP_BYTES", 1 << 40)
    model.predict(data, batch_size=8)
    kept = mx.get_cache_memory()
    assert kept > 0  # below the threshold: the freed buffers stay for the next call
    monkeypatch.setattr(cross_encoder_module, "CACHE_KEEP_BYTES", kept // 2)
    model.predict(data, batch_size=8)
    assert mx.get_cache_memory() <= kept // 2  # above it: emptied


@pytest.mark.parametrize("arch", ["bert", "xlm_roberta"])
def test_chunk_inputs_reach_the_device_in_one_copy(tmp_path, monkeypatch, arch):
    model = MLXCrossEncoder(BUILDERS[arch](tmp_path / arch))
    tokens = tokenizing.encode_arrays(model.tokenizer, varied_pairs(7), model._type_rule)
    host = tokens.padded(np.arange(2, 6), 64, model.pad_token_id)
    copies = []
    real = mx.array
    monkeypatch.setattr(mx, "array", lambda *a, **k: copies.append(1) or real(*a, **k))
    device = model._device_inputs(host)
    assert len(copies) == 1  # ids, mask (and token types) in one host-to-device copy
    for got, want in zip(device, host):
        assert (got is None) == (want is None)
        if want is not None:
            np.testing.assert_array_equal(np.array(got), want)
    monkeypatch.setattr(gpu_chunks, "ONE_TRANSFER", False)
    copies.clear()
    again = model._device_inputs(host)
    assert len(copies) == sum(a is not None for a in host)
    for got, want in zip(again, device):
        assert (got is None) == (want is None) and (got is None or np.array_equal(np.array(got), np.array(want)))


def test_default_chunks_hold_the_same_work_per_launch_for_every_width():
    # tokens x hidden^2 (GPU time per layer's kernels) constant across widths; the 1024-wide encoders keep the
    # 6,144-token chunks whose peaks sessions 5-7 measured; narrower encoders get larger chunks
    for hidden in (32, 384, 768, 1024, 2048):
        tokens = base.default_chunk_tokens(hidden)
        assert 0 <= base.CHUNK_TOKEN_WORK - tokens * hidden * hidden < hidden * hidden
    assert base.default_chunk_tokens(1024) == 6144
    assert base.default_chunk_tokens(384) > base.default_chunk_tokens(768) > base.default_chunk_tokens(1024)


def test_tokenize_processes_argument_overrides_the_environment(tmp_path, monkeypatch):
    from mlx_cross_encoder import tokenize_procs

    directory = builders.bert_cross_encoder(tmp_path / "bert")
    data = varied_pairs(40) * 2  # >= PARALLEL_TOKENIZE_MIN pairs: a call big enough for worker processes
    assert len(data) >= tokenizing.PARALLEL_TOKENIZE_MIN
    threaded = MLXCrossEncoder(directory, chunk_tokens=500, tokenize_processes=0)
    monkeypatch.setenv(tokenizing.TOKENIZE_PROCESSES_ENV_VAR, "3")  # the argument wins over it, both ways
    assert threaded.chunking["tokenize_processes"] == 0
    want = threaded.predict(data, batch_size=len(data))
    assert id(threaded.tokenizer) not in tokenize_procs._POOLS  # 0: the threads, whatever the environment says
    model = MLXCrossEncoder(directory, chunk_tokens=500, tokenize_processes=2)
    assert model.chunking["tokenize_processes"] == 2
    try:
        got = model.predict(data, batch_size=len(data))
        assert tokenize_procs._POOLS[id(model.tokenizer)][1][0] == 2  # its own pool, of 2 workers
    finally:
        tokenize_procs.shutdown()
    np.testing.assert_array_equal(got, want)
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="tokenize_processes"):
            MLXCrossEncoder(directory, tokenize_processes=bad)
