"""``harness merge A.json B.json ... --output F``: the shards of one suite run (``harness run --shard i/n``) as
one results file.

Refused, with the file and the field named (``MergeError``): a file that is not a shard or not complete; shards of
different counts, the same shard twice, missing shards; files that are not comparable: another suite, suite
fingerprint (settings), metrics, ``measure:``, seed, baseline, selection (``--only``, ``--max-queries``), harness
commit, or schema; a run missing from a file; a run whose protocol differs (weights, truncation, dtype,
candidates of the whole dataset: ``full_dataset_fingerprint``) or whose device differs.

Quality is exact: a query belongs to one shard, its per-query values are its shard's, and each metric's mean is
taken over every judged query in qid order as ``harness.metrics.evaluate`` does, so the merged metrics equal an
unsharded run's (with single_query as the first scenario; offline batches differ per shard, so scores may differ
within the dtype's tolerance). The merged protocol has the whole dataset's fingerprint and counts.

Speed is pooled: pass k of the merged run is the sum of pass k of every shard (the time one machine would need
for all queries), throughput and latency percentiles are recomputed from the pooled figures, the verdict is
judged again; shards measured on different machines (chip or host) make every merged run INVALID with that
reason. Shards that made different numbers of passes are pooled over the passes they all made (a warning says
so). The merged file keeps every shard's environment in ``merged_shards``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .models import MergedShard, ResultsFile
from .store import ResultsError, load_results, save_results

SHARD_PROTOCOL = ("shard", "dataset_fingerprint", "full_dataset_fingerprint", "n_queries", "n_pairs")
SAME_TOP = ("schema", "suite", "fingerprint", "metrics", "measure", "seed", "baseline")


class MergeError(ResultsError):
    """The files cannot be merged; the message names the file and the field."""


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _shards(docs: list[tuple[str, dict]]) -> list[tuple[str, dict, Any]]:
    """(path, document, Shard) in shard order, after the shard checks."""
    from ..run.shard import Shard

    out = []
    for path, doc in docs:
        text = (doc.get("selection") or {}).get("shard")
        if text is None:
            raise MergeError(f"{path}: selection.shard: not a shard (written without harness run --shard)")
        if doc.get("complete") is not True:
            raise MergeError(
                f"{path}: complete: {doc.get('complete')} ({doc.get('incomplete_reason')}); "
                "complete it first (harness run --resume)"
            )
        out.append((path, doc, Shard.parse(text)))
    count = out[0][2].count
    seen: dict[int, str] = {}
    for path, _, shard in out:
        if shard.count != count:
            raise MergeError(
                f"{path}: selection.shard: {shard} is not of {count} shards like {out[0][0]} ({out[0][2]})"
            )
        if shard.index in seen:
            raise MergeError(f"{path}: selection.shard: {shard} overlaps {seen[shard.index]} (also {shard})")
        seen[shard.index] = path
    missing = [f"{i}/{count}" for i in range(1, count + 1) if i not in seen]
    if missing:
        raise MergeError(f"missing shards: {', '.join(missing)} (given: {', '.join(str(s) for _, _, s in out)})")
    return sorted(out, key=lambda t: t[2].index)


def _key(run: dict) -> tuple[str, str]:
    return run["dataset"], run["reranker"]


def _label(i: int, run: dict) -> str:
    return f"runs[{i}] ({run['reranker']} on {run['dataset']})"


def _check_comparable(shards: list[tuple[str, dict, Any]]) -> None:
    first_path, first, _ = shards[0]
    first_runs = {_key(r): (i, r) for i, r in enumerate(first["runs"])}
    commit = ((first.get("environment") or {}).get("git") or {}).get("commit")
    for path, doc, _ in shards[1:]:
        for key in SAME_TOP:
            if doc.get(key) != first.get(key):
                raise MergeError(
                    f"{path}: {key}: {_short(doc.get(key))} differs from {first_path}'s {_short(first.get(key))}"
                )
        a = {k: v for k, v in (first.get("selection") or {}).items() if k != "shard"}
        b = {k: v for k, v in (doc.get("selection") or {}).items() if k != "shard"}
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                raise MergeError(
                    f"{path}: selection.{key}: {_short(b.get(key))} differs from {first_path}'s {_short(a.get(key))}"
                )
        other = ((doc.get("environment") or {}).get("git") or {}).get("commit")
        if other != commit:
            raise MergeError(f"{path}: environment.git.commit: {other} differs from {first_path}'s {commit}")
        runs = {_key(r): (i, r) for i, r in enumerate(doc["runs"])}
        for key in first_runs.keys() - runs.keys():
            raise MergeError(f"{path}: no run of {key[1]} on {key[0]} (in {first_path})")
        for key in runs.keys() - first_runs.keys():
            raise MergeError(f"{path}: {_label(runs[key][0], runs[key][1])}: not in {first_path}")
        for key, (i, run) in runs.items():
            base = first_runs[key][1]
            fields = set(base["protocol"]) | set(run["protocol"])
            for name in sorted(fields - set(SHARD_PROTOCOL)) + ["full_dataset_fingerprint"]:
                if run["protocol"].get(name) != base["protocol"].get(name):
                    raise MergeError(
                        f"{path}: {_label(i, run)}.protocol.{name}: {_short(run['protocol'].get(name))} differs "
                        f"from {first_path}'s {_short(base['protocol'].get(name))}"
                    )
            if run["status"] == base["status"] == "ok" and run.get("device") != base.get("device"):
                raise MergeError(
                    f"{path}: {_label(i, run)}.device: {run.get('device')} differs from {first_path}'s {base.get('device')}"
                )


def merge_files(paths: list[str | Path]) -> ResultsFile:
    """The merged results of the shard files ``paths`` (any order); MergeError when they cannot be merged."""
    from ..suite.models import MeasureSpec
    from .merge_runs import merge_run

    if not paths:
        raise MergeError("no results files to merge")
    shards = _shards([(str(p), load_results(p)) for p in paths])
    _check_comparable(shards)
    typed = [(path, ResultsFile.model_validate(doc), shard) for path, doc, shard in shards]
    first = typed[0][1]
    machines = len({(doc.environment.chip.get("name"), doc.environment.hostname_hash) for _, doc, _ in typed})
    measure = MeasureSpec.model_validate(first.measure)
    runs = []
    for run in first.runs:
        parts = [
            (str(shard), next(r for r in doc.runs if (r.dataset, r.reranker) == (run.dataset, run.reranker)))
            for _, doc, shard in typed
        ]
        runs.append(merge_run(parts, measure, machines))
    merged = first.model_copy(deep=True)
    merged.selection = {**first.selection, "shard": None}
    merged.complete, merged.incomplete_reason = True, None
    merged.runs = runs
    merged.merged_shards = [
        MergedShard(file=path, shard=str(shard), environment=doc.environment) for path, doc, shard in typed
    ]
    return merged


def merge_to(paths: list[str | Path], output: str | Path, overwrite: bool = False) -> Path:
    """Merge and write ``output`` (an existing file is refused unless ``overwrite``)."""
    output = Path(output)
    if output.exists() and not overwrite:
        raise MergeError(f"{output} already exists; use --overwrite to replace it")
    if any(Path(p).resolve() == output.resolve() for p in paths):
        raise MergeError(f"--output {output} is one of the files to merge")
    merged = merge_files(paths)
    return save_results(merged.model_dump(mode="json", by_alias=True, exclude_unset=True), output)
