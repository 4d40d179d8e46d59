"""MLX cross-encoder speed and peak memory per ``chunk_tokens`` setting, called as the harness's offline scenario calls
it (issue 12 items 3-5): one ``predict`` per length-sorted batch, same batches for every setting and for torch.

    python benchmarks/enc_chunks.py MODEL --candidates DL19.json [--queries 43] [--dtype bfloat16]
        [--batch-size 1024] [--max-batch-tokens N] [--chunk-tokens 0,auto,16384,65536] [--repeats 5] [--torch]
        [--scenario offline|single_query] [--json OUT]

MODEL: a folder or ``local:<name>`` (harness.localmodels). Per setting (``0``: off, the former one-piece path;
``auto``: the default, ``base.default_chunk_tokens(hidden_size)`` on a GPU; a number: that many padded tokens per
chunk; then ``:key=value`` fields setting the library's knobs for that setting, see :func:`apply_setting`, e.g.
``16384:first=256:ahead=1:tchunk=16:pmin=64:ckeep=0`` = session 5's pipeline): one untimed warm-up pass over every batch
(each shape built once), then ``--repeats`` timed passes; a pass is the sum of its calls' times, as in the harness.
``--scenario single_query``: the calls are the harness's single_query calls instead (one per query: its candidates
in input order, ``predict(batch_size=--batch-size)``). Reported: ``pairs_per_s`` per pass and their median,
``peak_mb`` (``mx.get_peak_memory()`` over the timed passes, weights included, as the harness records it) and
``max_abs_diff`` of the scores against the first setting's. ``--torch``: sentence-transformers' ``CrossEncoder`` over
the same batches (``torch.cuda.max_memory_allocated``, weights included). Each MLX row records the reranker's
``chunking`` (what its chunks followed); the output records ``device``, ``env`` (MLX's CUDA settings, read once per
process: compare them across processes, :data:`ENV_KEYS`) and ``cpu_count``. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

_DEFAULTS: dict = {}  # the library's own values, saved before the first setting changes them


#: the library's knobs a setting can change: key -> (module attribute, parser); see :func:`apply_setting`
KNOBS = {
    "first": ("cross_encoder.STREAM_FIRST_ROWS", int),
    "rows": ("cross_encoder.STREAM_ROWS", int),
    "ahead": ("base.PREPARE_AHEAD", int),
    "tchunk": ("tokenizing.TOKENIZE_CHUNK_MIN", int),
    "pmin": ("tokenizing.PARALLEL_TOKENIZE_MIN", int),
    "widths": ("base.BATCH_WIDTHS", lambda v: None if v == "none" else float(v)),
    "ckeep": ("cross_encoder.CACHE_KEEP_BYTES", int),
    "qkv": ("bert.FUSE_QKV", lambda v: v not in ("0", "off", "false")),
    "tahead": ("tokenizing.TOKENIZE_AHEAD", lambda v: v not in ("0", "off", "false")),
    "tspread": ("tokenizing.SPREAD_FIRST_PIECE", lambda v: v not in ("0", "off", "false")),
    "ctw": ("base.CHUNK_TOKEN_WORK", int),
    "dtypes": ("tokenizing.DERIVE_TYPE_IDS", lambda v: v not in ("0", "off", "false")),
    "xfer1": ("gpu_chunks.ONE_TRANSFER", lambda v: v not in ("0", "off", "false")),
    "procs": ("tokenizing.TOKENIZE_PROCESSES", int),
}


def apply_setting(setting: str):
    """A ``--chunk-tokens`` item, ``CHUNK[:key=value...][:keep]``: returns the ``chunk_tokens`` value to construct
    with ("auto" or an int) and sets the library's knobs for this setting (every knob not named goes back to the
    library's own value): ``first``/``rows`` streamed calls' first and largest piece, ``ahead`` pieces prepared at
    once, ``tchunk``/``pmin`` tokenizer task size and threading threshold, ``widths`` the memory bound
    (``none`` = off), ``ckeep`` bytes of MLX buffer cache predict keeps (0 = always emptied), ``qkv=0`` BERT's three
    query/key/value projections instead of the fused one (models.bert.FUSE_QKV), ``tahead=0`` each streamed piece
    tokenized when prepared (tokenizing.TOKENIZE_AHEAD off: session 6), ``tspread=0`` the first piece in tasks of
    TOKENIZE_CHUNK_MIN like the rest (tokenizing.SPREAD_FIRST_PIECE off), ``dtypes=0`` BERT type ids read from the
    encodings, not derived from the ids (tokenizing.DERIVE_TYPE_IDS), ``xfer1=0`` three host-to-device copies per
    chunk, not one (gpu_chunks.ONE_TRANSFER), ``procs`` tokenizer worker processes
    (tokenizing.TOKENIZE_PROCESSES; 0 = threads), ``ctw`` the chunk budget base.CHUNK_TOKEN_WORK ('auto' = that //
    hidden size**2), ``threads`` tokenizer
    threads (``MLX_CROSS_ENCODER_TOKENIZE_THREADS``), ``switch`` Python's thread switch interval in seconds
    (``sys.setswitchinterval``: how long a thread waiting for the GIL may wait; default 0.005), ``keep``:
    ``mx.clear_cache`` does nothing (predict's end-of-call cache release skipped)."""
    import mlx.core as mx

    from mlx_cross_encoder import base, cross_encoder, gpu_chunks, tokenizing
    from mlx_cross_encoder.models import bert

    modules = {
        "base": base,
        "cross_encoder": cross_encoder,
        "bert": bert,
        "tokenizing": tokenizing,
        "gpu_chunks": gpu_chunks,
    }
    for attribute, _ in KNOBS.values():
        module, name = attribute.split(".")
        _DEFAULTS.setdefault(attribute, getattr(modules[module], name))
    _DEFAULTS.setdefault("clear_cache", mx.clear_cache)
    chunk, *fields = setting.split(":")
    given = dict(field.partition("=")[::2] for field in fields)
    for key, (attribute, parse) in KNOBS.items():
        module, name = attribute.split(".")
        setattr(modules[module], name, parse(given[key]) if key in given else _DEFAULTS[attribute])
    if "threads" in given:  # read by tokenizing.tokenize_threads at every call
        os.environ["MLX_CROSS_ENCODER_TOKENIZE_THREADS"] = given["threads"]
    else:
        os.environ.pop("MLX_CROSS_ENCODER_TOKENIZE_THREADS", None)
    mx.clear_cache = (lambda: None) if "keep" in given else _DEFAULTS["clear_cache"]
    _DEFAULTS.setdefault("switch", sys.getswitchinterval())
    sys.setswitchinterval(float(given["switch"]) if "switch" in given else _DEFAULTS["switch"])
    unknown = set(given) - set(KNOBS) - {"threads", "keep", "switch"}
    if unknown:
        raise SystemExit(f"unknown setting field(s) {sorted(unknown)} in {setting!r}")
    return "auto" if chunk == "auto" else int(chunk)


def release_cache() -> None:
    """Empty MLX's buffer cache between settings, also after a ``keep`` setting replaced ``mx.clear_cache``."""
    import mlx.core as mx

    _DEFAULTS.get("clear_cache", mx.clear_cache)()


def load_queries(path: str, queries: int) -> list[list[tuple[str, str]]]:
    """The first ``queries`` queries of a candidates file, each its (query, passage) pairs in the file's order."""
    data = json.loads(Path(path).read_text())[:queries]
    return [[(q["query"], h["content"]) for h in q["hits"]] for q in data]


def load_pairs(path: str, queries: int) -> list[tuple[str, str]]:
    return [pair for query in load_queries(path, queries) for pair in query]


def offline_calls(model, pairs, batch_size: int, budget: int | None) -> list[list[tuple[str, str]]]:
    """The harness offline scenario's calls (harness.scenarios.offline.plan): token counts, then THE planner."""
    from mlx_cross_encoder.base import length_sorted_batches

    lengths = model.token_counts(pairs)
    return [[pairs[i] for i in batch] for batch in length_sorted_batches(lengths, batch_size, budget)]


def scenario_calls(a, model, queries) -> list[list[tuple[str, str]]]:
    """The calls of ``a.scenario``: single_query one per query (its candidates in order), offline the planner's
    length-sorted batches (token counts from ``model``'s tokenizer, the same for every setting)."""
    if a.scenario == "single_query":
        return queries
    return offline_calls(model, [pair for query in queries for pair in query], a.batch_size, a.mbt)


#: MLX's CUDA settings (read once per process, when its GPU starts) and the tokenizer's: recorded with every run
ENV_KEYS = (
    "MLX_USE_CUDA_GRAPHS",
    "MLX_MAX_OPS_PER_BUFFER",
    "MLX_MAX_MB_PER_BUFFER",
    "MLX_CROSS_ENCODER_TOKENIZE_THREADS",
    "TOKENIZERS_PARALLELISM",
)


def run_environment() -> dict:
    """``device``, ``env`` (:data:`ENV_KEYS` as this process sees them after mlx_cross_encoder's import hook) and
    ``cpu_count`` of this run."""
    import mlx_cross_encoder  # noqa: F401  # isort: skip  (BLAS hook and CUDA settings before mlx.core)
    import mlx.core as mx

    return {
        "device": str(mx.default_device()),
        "env": {k: os.environ.get(k) for k in ENV_KEYS},
        "cpu_count": os.cpu_count(),
    }


def common_args(ap: argparse.ArgumentParser, chunk_tokens: str) -> None:
    """The arguments enc_chunks.py and enc_timeline.py share (``chunk_tokens``: the default settings)."""
    ap.add_argument("model")
    ap.add_argument("--candidates", required=True)
    ap.add_argument("--queries", type=int, default=43)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument(
        "--chunk-tokens",
        default=chunk_tokens,
        help="comma-separated: 0 (off), auto or a token count, each with :key=value knobs (see apply_setting)",
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None, help="also write the JSON object here (after every setting)")


def passes(predict, calls, repeats: int, sync=lambda: None) -> tuple[list[float], np.ndarray]:
    """Seconds of each timed pass (sum of its calls) and the last pass's scores, after one warm-up pass."""
    for rows in calls:
        predict(rows)
    sync()
    seconds, scores = [], None
    for _ in range(repeats):
        total, outs = 0.0, []
        for rows in calls:
            start = time.perf_counter()
            outs.append(np.asarray(predict(rows), dtype=np.float32).reshape(-1))
            sync()
            total += time.perf_counter() - start
        seconds.append(total)
        scores = np.concatenate(outs)
    return seconds, scores


def mlx_rows(a, path: str, queries, rows: list, save=lambda: None) -> list[list[tuple[str, str]]]:
    """One row per ``--chunk-tokens`` setting into ``rows`` (``save()`` after each); returns the calls it ran
    (formed once, with the first setting's model: the tokenizer is the same for all)."""
    import mlx_cross_encoder  # noqa: F401  # isort: skip  (BLAS hook and CUDA settings before mlx.core)
    import mlx.core as mx

    from mlx_cross_encoder import MLXCrossEncoder

    reference, calls = None, None
    pairs = sum(len(q) for q in queries)
    batch = (lambda r: a.batch_size) if a.scenario == "single_query" else len
    for setting in a.chunk_tokens.split(","):
        chunk = apply_setting(setting)
        model = MLXCrossEncoder(path, dtype=a.dtype, max_length=512, chunk_tokens=chunk, max_batch_tokens=a.mbt)
        calls = calls if calls is not None else scenario_calls(a, model, queries)
        mx.reset_peak_memory()
        print(f"[enc_chunks] mlx chunk_tokens={setting} {time.strftime('%H:%M:%S')}", file=sys.stderr, flush=True)
        seconds, scores = passes(lambda r, m=model: m.predict(r, batch_size=batch(r)), calls, a.repeats)
        reference = scores if reference is None else reference
        rows.append(
            {
                "backend": "mlx",
                "chunk_tokens": setting,
                "resolved_chunk_tokens": model.chunk_tokens,
                "chunking": model.chunking,
                "calls": len(calls),
                "pairs_per_s": [pairs / s for s in seconds],
                "median_pairs_per_s": pairs / statistics.median(seconds),
                "peak_mb": mx.get_peak_memory() / 2**20,
                "max_abs_diff": float(np.abs(scores - reference).max()),
            }
        )
        save()
        del model
        release_cache()
    return calls


def torch_row(a, path: str, calls) -> dict:
    import torch
    from sentence_transformers import CrossEncoder

    cuda = torch.cuda.is_available()
    st = CrossEncoder(
        path, device="cuda" if cuda else "cpu", max_length=512, model_kwargs={"torch_dtype": getattr(torch, a.dtype)}
    )
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    batch = (lambda r: a.batch_size) if a.scenario == "single_query" else len
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    seconds, _ = passes(
        lambda r: st.predict(r, batch_size=batch(r), show_progress_bar=False, convert_to_numpy=True),
        calls,
        a.repeats,
        sync,
    )
    pairs = sum(len(c) for c in calls)
    return {
        "backend": "torch",
        "calls": len(calls),
        "pairs_per_s": [pairs / s for s in seconds],
        "median_pairs_per_s": pairs / statistics.median(seconds),
        "peak_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common_args(ap, "0,auto")
    ap.set_defaults(repeats=5)
    ap.add_argument("--max-batch-tokens", dest="mbt", type=int, default=None)
    ap.add_argument("--torch", action="store_true")
    ap.add_argument("--scenario", choices=["offline", "single_query"], default="offline")
    a = ap.parse_args()

    from harness.localmodels import resolve_model

    path = resolve_model(a.model) if a.model.startswith("local:") else a.model
    queries = load_queries(a.candidates, a.queries)
    start = time.perf_counter()
    out = {"model": a.model, "dtype": a.dtype, "pairs": sum(map(len, queries)), "batch_size": a.batch_size}
    out["max_batch_tokens"] = a.mbt
    out["scenario"] = a.scenario
    out.update(run_environment())
    out["rows"] = []

    def save():  # after every row: a run cut short by a timeout keeps what it measured
        out["wall_s"] = time.perf_counter() - start
        if a.json:
            Path(a.json).write_text(json.dumps(out) + "\n")

    calls = mlx_rows(a, path, queries, out["rows"], save)
    if a.torch:
        out["rows"].append(torch_row(a, path, calls))
        save()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
