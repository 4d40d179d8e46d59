"""Host work of an MLX cross-encoder call, before vs after the token-array path (issue 12 item 5), in one process:
tokenizing every pair and padding every planned batch into numpy arrays, nothing on the device.

    python benchmarks/enc_host.py MODEL --candidates DL19.json [--queries 43] [--batch-size 1024] [--threads 1,2]
        [--repeats 5]

* ``before``: ``tokenizing.encode_in_threads`` (``encode_batch``, with character offsets) + the former ``_collate`` (a
  numpy fill from each batch's ``Encoding.ids`` / ``type_ids`` lists; copied here as it was at 5e6e009);
* ``after``: ``tokenizing.encode_arrays`` (``encode_batch_fast``, each thread turning its chunk into flat arrays) +
  ``TokenArrays.padded`` per batch (one vectorised gather).

Both give the same arrays (checked). Interleaved repeats, median seconds per setting; prints one JSON object.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from pathlib import Path

import numpy as np


def former_collate(encodings, width_of, pad_id: int, types: bool):
    """The former ``MLXCrossEncoder._collate`` without the device copy (numpy out)."""
    rows = [e.ids for e in encodings]
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    width = width_of(int(lengths.max()))
    filled = np.arange(width)[None, :] < lengths[:, None]
    ids = np.full((len(rows), width), pad_id, dtype=np.int32)
    ids[filled] = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int32, count=int(lengths.sum()))
    token_types = None
    if types:
        token_types = np.zeros((len(rows), width), dtype=np.int32)
        flat = itertools.chain.from_iterable(e.type_ids for e in encodings)
        token_types[filled] = np.fromiter(flat, dtype=np.int32, count=int(lengths.sum()))
    return ids, filled.astype(np.int32), token_types


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--candidates", required=True)
    ap.add_argument("--queries", type=int, default=43)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()

    from harness.localmodels import resolve_model
    from mlx_cross_encoder import MLXCrossEncoder, tokenizing

    path = resolve_model(a.model) if a.model.startswith("local:") else a.model
    data = json.loads(Path(a.candidates).read_text())[: a.queries]
    pairs = [(q["query"], h["content"]) for q in data for h in q["hits"]]
    model = MLXCrossEncoder(path, max_length=512, chunk_tokens=None)
    types, pad = model._type_rule, model.pad_token_id  # what predict asks for (derived BERT type ids)

    def before(threads: int):
        encodings = tokenizing.encode_in_threads(model.tokenizer, pairs, threads=threads)
        batches = model.plan([len(e) for e in encodings], a.batch_size)
        return [former_collate([encodings[i] for i in b], model._width, pad, types) for b in batches]

    def after(threads: int):
        tokens = tokenizing.encode_arrays(model.tokenizer, pairs, types, threads=threads)
        batches = model.plan(tokens.lengths, a.batch_size)
        return [tokens.padded(b, model._width(int(tokens.lengths[b].max())), pad) for b in batches]

    out: dict = {"model": a.model, "pairs": len(pairs), "batch_size": a.batch_size, "seconds": {}}
    for threads in [int(t) for t in a.threads.split(",")]:
        for x, y in zip(before(threads), after(threads)):  # same arrays (also the warm-up)
            for u, v in zip(x, y):
                assert (u is None and v is None) or np.array_equal(u, v)
        times: dict[str, list[float]] = {"before": [], "after": []}
        for _ in range(a.repeats):
            for name, fn in (("before", before), ("after", after)):
                start = time.perf_counter()
                fn(threads)
                times[name].append(time.perf_counter() - start)
        out["seconds"][str(threads)] = {k: statistics.median(v) for k, v in times.items()}
        out["seconds"][str(threads)]["ratio_after_before"] = (
            out["seconds"][str(threads)]["after"] / out["seconds"][str(threads)]["before"]
        )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
