"""TriBridRAG's mined triplets as training data of a suite's ``train:`` section (source kind ``tribrid_triplets``).

A source ``{tribrid_triplets: FILE, corpus_root: DIR}`` names a TriBridRAG triplet JSONL (one
``{"query", "positive", "negative"}`` per line, corpus-relative paths: what ``mlx-cross-encoder tribrid mine`` and
TriBridRAG's ``POST /api/reranker/mine`` write) and the corpus those paths are relative to. It is read as TriBridRAG
reads it for training (``mlx_cross_encoder.tribrid``):

1. ``read_triplets`` = TriBridRAG's ``load_triplets`` (three non-empty strings; other lines counted as malformed);
2. ``materialize`` = its ``materialize_triplets`` (absolute paths and ``..`` escapes refused, missing files
   skipped, text = the file's first 2000 characters, stripped);
3. each triplet -> two labeled pairs, (query, positive, 1) and (query, negative, 0), duplicates dropped
   (``triplets_to_pairs``). The harness then deduplicates on (query, document) across all sources, first kept:
   a passage that is a positive in one triplet and a negative in a later one keeps its first label.

Skipped lines and triplets are counted and printed (stderr), never fatal; a file that gives no pair at all is a
``TrainDataError`` naming the file and the counts. Labels: 1 -> grade ``label_threshold``, 0 -> grade 0 (the
dev metric's gains), as for JSONL sources. Triplets carry no query ids: the held-out check compares query text.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .data import Pair, TrainDataError, normalize_query


def tribrid_pairs(triplets: Path, corpus_root: Path, label_threshold: int, source: int = 0) -> list[Pair]:
    """The labeled pairs of a TriBridRAG triplet file (module docstring), in file order."""
    from mlx_cross_encoder.tribrid.corpus import materialize, triplets_to_pairs
    from mlx_cross_encoder.tribrid.querylog import LogStats, read_triplets

    if not Path(corpus_root).is_dir():
        raise TrainDataError(f"{triplets}: corpus_root {corpus_root} is not a folder")
    read_stats = LogStats()
    raw = read_triplets(triplets, read_stats)
    texts, stats = materialize(raw, corpus_root)
    skipped = {
        "malformed_lines": read_stats.malformed_lines,
        **{k: v for k, v in stats.model_dump().items() if k not in ("triplets_in", "triplets_out")},
    }
    counts = ", ".join(f"{k} {v}" for k, v in skipped.items() if v)
    if not texts:
        raise TrainDataError(
            f"{triplets}: no usable triplet ({len(raw)} read{', ' + counts if counts else ''}; paths are read "
            f"relative to corpus_root {corpus_root})"
        )
    if counts:
        print(f"{triplets}: {stats.triplets_out} of {len(raw)} triplets used; skipped: {counts}", file=sys.stderr)
    return [
        Pair(
            normalize_query(row["query"]),
            row["query"],
            row["document"],
            float(row["label"]),
            label_threshold if row["label"] == 1 else 0,
            source,
        )
        for row in triplets_to_pairs(texts)
    ]
