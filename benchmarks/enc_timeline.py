"""Where a pass of the harness's offline scenario goes inside ``MLXCrossEncoder.predict`` on a GPU (issue 12, MiniLM
bf16 >= 20,000 pairs/s): a host/GPU timeline per chunk, not a guess.

    python benchmarks/enc_timeline.py MODEL --candidates DL19.json [--queries 43] [--dtype bfloat16]
        [--batch-size 1024] [--chunk-tokens auto,32768,65536] [--repeats 3] [--kernels auto,...] [--json OUT]

Per ``--chunk-tokens`` setting (as in benchmarks/enc_chunks.py, ``:key=value`` knobs included: the offline scenario's
length-sorted calls, one untimed warm-up pass over every call, then ``--repeats`` plain timed passes ->
``pairs_per_s``), one more pass with every step of ``predict`` timed on the thread that runs it (functions wrapped,
code unchanged):

* prepare thread: ``tokenize`` (``encode_arrays``), ``pad`` (``_chunks``: padded host arrays), ``piece`` (both;
  with ``tokenizing.TOKENIZE_AHEAD`` a streamed call's tokenizer tasks run on the pool from the call's start, not inside
  ``encode_arrays``: then ``piece`` minus ``pad`` is the wait for them);
* main thread: ``wait_piece`` (blocked on the next prepared piece = waiting for the host), ``to_device``
  (``mx.array`` of the host arrays), ``build`` (the model's Python forward: graph construction), ``submit``
  (``mx.async_eval``: on MLX's CUDA backend the kernels are encoded and launched here), ``readback`` (``np.asarray``
  of the previous chunk's scores = waiting for the GPU).

``totals_s`` per step, ``per_chunk_ms``, ``main_idle_for_host`` / ``main_idle_for_gpu`` (fractions of the pass) and
``by_position_ms`` (each call's first chunk vs the rest: per-call costs). Then the same chunks, already padded,
without the host: ``device_floor_s`` (built and handed to MLX back to back, one sync at the end: launch + GPU),
``build_only_s`` (graphs built, nothing run) and ``sync_each_ms`` (each chunk run alone and waited for).
``--kernels S1,S2`` (alone: every setting): for those settings the pass again under ``torch.profiler`` (CUPTI sees
every kernel of the process, MLX's included): ``gpu_busy_s`` (union of kernel intervals), ``gpu_busy_fraction`` of
the first-to-last kernel window, kernel count; null with the reason if CUPTI recorded nothing. The output records
``device``, ``env`` (MLX's CUDA settings: ``enc_chunks.ENV_KEYS``) and ``cpu_count``. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
# a sibling script, not a package
from enc_chunks import (  # noqa: E402
    apply_setting,
    common_args,
    load_pairs,
    offline_calls,
    passes,
    release_cache,
    run_environment,
)


class Trace:
    """``(thread, step, start, stop)`` events of wrapped functions."""

    def __init__(self):
        self.events: list[tuple[str, str, float, float]] = []
        self.hosts: list = []  # every chunk's padded host arrays, in order

    def wrap(self, step: str, fn):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.events.append((threading.current_thread().name, step, start, time.perf_counter()))

        return timed

    def totals(self) -> dict:
        out: dict = {}
        for thread, step, start, stop in self.events:
            key = f"{'main' if thread == 'MainThread' else thread.split('_')[0]}:{step}"
            total, count = out.get(key, (0.0, 0))
            out[key] = (total + stop - start, count + 1)
        return {k: {"s": round(t, 6), "n": n} for k, (t, n) in sorted(out.items())}


class _Model:
    """The reranker's ``model`` with its call (graph construction) timed; attributes delegated."""

    def __init__(self, inner, trace: Trace):
        self._inner, self._call = inner, trace.wrap("build", inner.__call__)

    def __call__(self, *args):
        return self._call(*args)

    def __getattr__(self, name):
        return getattr(self._inner, name)


class _Numpy:
    """``numpy`` for ``base.read_back_behind``: ``asarray`` of an MLX array (the read-back) timed."""

    def __init__(self, trace: Trace, mx):
        self._readback, self._mx = trace.wrap("readback", np.asarray), mx

    def asarray(self, x, *args, **kwargs):
        if isinstance(x, self._mx.array):
            return self._readback(x, *args, **kwargs)
        return np.asarray(x, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(np, name)


@contextlib.contextmanager
def traced(model, trace: Trace):
    """Wrap the steps of ``model.predict`` (module attributes and the instance's methods), restored on exit."""
    import mlx.core as mx

    from mlx_cross_encoder import base, cross_encoder

    def timed_prepared(pieces, threaded):
        @contextlib.contextmanager
        def wrapper():
            with saved["prepared_ahead"](pieces, threaded) as it:

                def iterate():
                    iterator = iter(it)
                    while True:
                        start = time.perf_counter()
                        try:
                            item = next(iterator)
                        except StopIteration:
                            return
                        finally:
                            trace.events.append(("MainThread", "wait_piece", start, time.perf_counter()))
                        yield item

                yield iterate()

        return wrapper()

    def chunks(tokens, rows, *args):
        out = saved_chunks(tokens, rows, *args)
        trace.hosts.extend(host for _, host in out)
        return out

    def pieces(*args):
        return [trace.wrap("piece", p) for p in saved_pieces(*args)]

    saved = {"prepared_ahead": cross_encoder.prepared_ahead, "encode_arrays": cross_encoder.encode_arrays}
    saved_chunks, saved_pieces, saved_inputs, saved_model = (
        model._chunks,
        model._pieces,
        model._device_inputs,
        model.model,
    )
    saved_async, saved_np = mx.async_eval, base.np
    cross_encoder.prepared_ahead = timed_prepared
    cross_encoder.encode_arrays = trace.wrap("tokenize", saved["encode_arrays"])
    model._chunks = trace.wrap("pad", chunks)
    model._pieces = pieces
    model._device_inputs = trace.wrap("to_device", saved_inputs)
    model.model = _Model(saved_model, trace)
    mx.async_eval = trace.wrap("submit", saved_async)
    base.np = _Numpy(trace, mx)
    try:
        yield
    finally:
        cross_encoder.prepared_ahead, cross_encoder.encode_arrays = saved["prepared_ahead"], saved["encode_arrays"]
        del model._chunks, model._pieces, model._device_inputs
        model.model, mx.async_eval, base.np = saved_model, saved_async, saved_np


def by_position(trace: Trace) -> dict:
    """Main-thread steps of each call's first chunk vs its later chunks (mean ms): a per-call cost (e.g. buffers
    allocated again after predict's ``mx.clear_cache``) shows as a dearer first chunk; ``call_ms``: mean call time,
    ``first_wait_ms``: the wait for each call's first piece (tokenizing it, nothing to overlap with)."""
    calls = [(a, b) for t, step, a, b in trace.events if step == "call"]
    out: dict = {"call_ms": 1e3 * statistics.mean(b - a for a, b in calls) if calls else None}
    for step in ("submit", "build", "readback", "wait_piece"):
        first, rest = [], []
        for a, b in calls:
            inside = sorted((s, e) for t, k, s, e in trace.events if k == step and t == "MainThread" and a <= s <= b)
            if inside:
                first.append(inside[0][1] - inside[0][0])
                rest.extend(e - s for s, e in inside[1:])
        out[step] = {
            "first_ms": 1e3 * statistics.mean(first) if first else None,
            "rest_ms": 1e3 * statistics.mean(rest) if rest else None,
        }
    return out


def device_only(model, hosts: list, act) -> dict:
    """The pass's chunks, already padded: launch + GPU without the host's tokenizing and padding."""
    import mlx.core as mx

    def forward(host):
        return act(model.model(*model._device_inputs(host)).astype(mx.float32))

    def floor():
        outs = []
        for host in hosts:
            outs.append(forward(host))
            mx.async_eval(outs[-1])
        mx.eval(outs)

    def build_only():
        return [forward(host) for host in hosts]

    floor()  # shapes seen
    runs = []
    for fn in (floor, floor, floor, build_only, build_only, build_only):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    each = []
    for host in hosts:
        start = time.perf_counter()
        mx.eval(forward(host))
        each.append((time.perf_counter() - start) * 1e3)
    return {
        "device_floor_s": statistics.median(runs[:3]),
        "build_only_s": statistics.median(runs[3:]),
        "sync_each_ms": {"sum": sum(each), "median": statistics.median(each), "max": max(each)},
    }


def kernel_busy(run_pass) -> dict:
    """``run_pass()`` under torch.profiler (CUDA activities): union of kernel intervals and their window."""
    try:
        import torch
        from torch.profiler import ProfilerActivity, profile
    except ImportError as exc:
        return {"gpu_busy_s": None, "why": f"no torch.profiler: {exc}"}
    if not torch.cuda.is_available():
        return {"gpu_busy_s": None, "why": "torch sees no CUDA device"}
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        start = time.perf_counter()
        run_pass()
        wall = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        trace_path = os.path.join(tmp, "trace.json")
        prof.export_chrome_trace(trace_path)
        events = json.loads(Path(trace_path).read_text()).get("traceEvents", [])
    spans = sorted((e["ts"], e["ts"] + e.get("dur", 0)) for e in events if e.get("cat") == "kernel")
    if not spans:
        return {"gpu_busy_s": None, "why": "CUPTI recorded no kernels", "pass_s": wall}
    busy, end = 0.0, spans[0][0]
    gaps = []
    for a, b in spans:
        if a > end:
            gaps.append(a - end)
        busy += max(0.0, b - max(a, end))
        end = max(end, b)
    window = (end - spans[0][0]) / 1e6
    return {
        "pass_s": wall,
        "kernels": len(spans),
        "gpu_busy_s": busy / 1e6,
        "kernel_window_s": window,
        "gpu_busy_fraction": busy / 1e6 / window if window else None,
        "gaps_over_50us": sum(1 for g in gaps if g > 50),
        "gap_s_over_50us": sum(g for g in gaps if g > 50) / 1e6,
    }


def profile_setting(a, path: str, pairs, setting: str) -> dict:

    from mlx_cross_encoder import MLXCrossEncoder
    from mlx_cross_encoder.precision import resolve_activation

    chunk = apply_setting(setting)
    model = MLXCrossEncoder(path, dtype=a.dtype, max_length=512, chunk_tokens=chunk)
    calls = offline_calls(model, pairs, a.batch_size, None)

    def one_pass():
        for rows in calls:
            model.predict(rows, batch_size=len(rows))

    print(f"[enc_timeline] chunk_tokens={setting} {time.strftime('%H:%M:%S')}", file=sys.stderr, flush=True)
    seconds, _ = passes(lambda r: model.predict(r, batch_size=len(r)), calls, a.repeats)
    trace = Trace()
    with traced(model, trace):
        start = time.perf_counter()
        for rows in calls:
            trace.wrap("call", model.predict)(rows, batch_size=len(rows))
        traced_s = time.perf_counter() - start
    totals = trace.totals()
    chunks = totals.get("main:build", {}).get("n", 0)
    row = {
        "chunk_tokens": setting,
        "resolved_chunk_tokens": model.chunk_tokens,
        "calls": len(calls),
        "chunks": chunks,
        "pairs_per_s": [len(pairs) / s for s in seconds],
        "median_pairs_per_s": len(pairs) / statistics.median(seconds),
        "traced_pass_s": traced_s,
        "totals_s": totals,
        "per_chunk_ms": {k: 1e3 * v["s"] / max(1, chunks) for k, v in totals.items()},
        "main_idle_for_host": totals.get("main:wait_piece", {}).get("s", 0.0) / traced_s,
        "main_idle_for_gpu": totals.get("main:readback", {}).get("s", 0.0) / traced_s,
    }
    row["by_position_ms"] = by_position(trace)
    row.update(device_only(model, trace.hosts, resolve_activation(model.default_activation)))
    if a.kernels == "*" or setting in a.kernels.split(","):
        row["kernels"] = kernel_busy(one_pass)
    release_cache()
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common_args(ap, "auto,32768,65536")
    ap.add_argument(
        "--kernels",
        nargs="?",
        const="*",
        default="",
        help="settings (comma-separated; alone: all) that also get a pass under torch.profiler (CUPTI)",
    )
    a = ap.parse_args()

    from harness.localmodels import resolve_model

    path = resolve_model(a.model) if a.model.startswith("local:") else a.model
    pairs = load_pairs(a.candidates, a.queries)
    start = time.perf_counter()
    out = {"model": a.model, "dtype": a.dtype, "pairs": len(pairs), "batch_size": a.batch_size}
    out.update(run_environment())
    out["rows"] = []
    for setting in a.chunk_tokens.split(","):
        out["rows"].append(profile_setting(a, path, pairs, setting))
        out["wall_s"] = time.perf_counter() - start
        if a.json:  # after every setting: a run cut short by a timeout keeps what it measured
            Path(a.json).write_text(json.dumps(out) + "\n")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
