"""``harness run --shard i/n``: one of n disjoint parts of every dataset, by query, the same on every machine.

A query belongs to shard ``i`` (1-based) of ``n`` when ``int(sha256(qid)[:16 hex], 16) % n == i - 1``: a stable
hash of the query id (not Python's ``hash``, which is salted per process), so every machine splits a dataset the
same way and the n shards cover every query exactly once. The shard is taken after the dataset is loaded and cut
(``top_k``, ``max_queries``): the shards of a suite are exactly the queries of its unsharded run, and
``harness merge`` (``harness.results.merge``) puts their results back together.

The run's protocol records ``shard: {index, count}``, the shard's own ``dataset_fingerprint`` (so ``--resume``
keeps only runs of the same shard) and the whole dataset's as ``full_dataset_fingerprint``. A dataset with no query
(and no judgment) in the shard gets runs with status error and ``EMPTY_SHARD`` as their message (nothing to
measure); ``harness merge`` leaves those shards out of the merged run.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: the error of every run of a dataset that has no query in this shard (``harness merge`` skips such runs)
EMPTY_SHARD = "empty shard"
_FORM = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


class Shard(BaseModel):
    """Shard ``index`` (1-based) of ``count``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    index: int = Field(ge=1)
    count: int = Field(ge=1)

    @model_validator(mode="after")
    def _in_range(self) -> Shard:
        if self.index > self.count:
            raise ValueError(f"shard {self.index}/{self.count}: the index must be between 1 and {self.count}")
        return self

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"2/4"`` -> Shard(index=2, count=4); ValueError saying what is wrong otherwise."""
        match = _FORM.match(text or "")
        if not match:
            raise ValueError(f"--shard must be I/N with 1 <= I <= N (e.g. 1/4), got {text!r}")
        index, count = int(match.group(1)), int(match.group(2))
        if count < 1 or not 1 <= index <= count:
            raise ValueError(f"--shard must be I/N with 1 <= I <= N (e.g. 1/4), got {text!r}")
        return cls(index=index, count=count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, qid: str) -> bool:
        return shard_of(qid, self.count) == self.index


def shard_of(qid: str, count: int) -> int:
    """The 1-based shard of query ``qid`` among ``count`` (stable across machines and processes)."""
    return int(hashlib.sha256(str(qid).encode("utf-8")).hexdigest()[:16], 16) % count + 1


def shard_dataset(ds, shard: Shard):
    """``ds`` (a ``harness.sources.types.RerankDataset``) restricted to the queries of ``shard``: queries,
    candidates and judgments alike (a judged query without candidates counts in its own shard's metrics)."""
    keep = lambda qid: shard.holds(qid)  # noqa: E731
    return replace(
        ds,
        queries={q: t for q, t in ds.queries.items() if keep(q)},
        candidates={q: c for q, c in ds.candidates.items() if keep(q)},
        qrels={q: d for q, d in ds.qrels.items() if keep(q)},
        protocol=dict(ds.protocol or {}),
    )
