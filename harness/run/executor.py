"""Run a suite: plan the steps, then one loop measures each in its own worker and stores results as they come.

Flow: ``select_all`` (``--only``) -> ``open_output`` (``harness.run.output``: lock, refuse an existing file unless
``--overwrite`` or ``--resume``) -> training (suites with a ``train:`` section: ``harness.train.plan``, then
``harness.run.training``: one ``harness.train.worker`` per model and backend) -> ``plan_steps`` -> for each
dataset: load it once (fingerprint recorded), write its
candidates for the workers, then run each step: the first stage (evaluated here), each reranker and each trained
model (``harness.run.spawn`` -> ``harness.run.worker``; scores evaluated here with ``harness.metrics``).

A worker that raises, crashes, is killed or times out becomes a run with ``status: "error"`` (``error_run``); the
other runs go on. The results file is rewritten atomically after every step; a save that fails goes to a fallback
path once. Ctrl-C, SIGTERM and SIGHUP stop the run: the worker's process group is killed, the temporary folder
removed, and the file saved with ``"complete": false`` and the reason. ``--resume`` keeps the ok runs of a file
written with the same suite fingerprint (same settings, same selection) and the same candidates and weights; they
are in the file from its first save (``Execution.hold``), so no interruption can drop them. A training kept from
the resumed file (ok, same plan, its weights unchanged) is not redone; any other trains in ``.<name>.partial/``,
which replaces the model folder only when it succeeded (``harness.run.training.train_job``; MLX trainers resume a
partial training of the same job from its checkpoint).
"""

from __future__ import annotations

import itertools
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..results import FIRST_STAGE, ResultsFile, ResultsWriter, Run, TrainBlock
from .interrupt import signals_interrupt
from .output import document, document_of, header, open_output, stopped
from .plan import Step, plan_steps, select_all, suite_fingerprint, train_root
from .prepare import (
    PreparedReranker,
    dataset_protocol,
    error_run,
    first_stage_run,
    prepare_reranker,
    scored_run,
    write_dataset_file,
)
from .shard import EMPTY_SHARD, Shard, shard_dataset
from .spawn import spawn_worker
from .training import train_models
from .verdict import judge_records
from .worker import MeasureJob

DEFAULT_TIMEOUT_S = 4 * 3600


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _describe(run: Run) -> str:
    if run.status != "ok":
        return f"error: {(run.error or '').splitlines()[0]}"
    parts = [f"{m} {v:.4f}" for m, v in list(run.metrics.items())[:2] if v is not None]
    speeds = {name: rec.pairs_per_s for name, rec in (run.scenarios or {}).items()}
    for name, rates in speeds.items():
        median = float(np.median([r for r in rates if r is not None] or [np.nan]))
        parts.append(f"{name} {median:.1f} pairs/s")
    if speeds:
        parts[-1] += f" on {run.device}"
    return "ok: " + ", ".join(parts)


def _put(items: list, index: int | None, item) -> None:
    """``item`` in place of the held entry at ``index`` (a resumed file's), or appended when none was held."""
    if index is None:
        items.append(item)
    else:
        items[index] = item


class Execution:
    """The state of one run of a suite: the results document, where it is saved, what was prepared."""

    def __init__(
        self,
        suite,
        results: ResultsFile,
        writer: ResultsWriter,
        workdir: Path,
        kept: dict,
        *,
        max_queries,
        timeout_s,
        progress,
        log,
        total: int,
        shard=None,
        trained_before: dict | None = None,
        resume: bool = False,
    ):
        self.suite, self.results, self.writer, self.workdir, self.kept = suite, results, writer, workdir, kept
        self.max_queries, self.timeout_s, self.progress, self.log, self.total = (
            max_queries,
            timeout_s,
            progress,
            log,
            total,
        )
        self.prepared: dict[str, PreparedReranker] = {}
        self.shard = shard  # harness.run.shard.Shard or None
        self.empty: str | None = None  # why the current dataset has nothing to measure in this shard
        self.trained_before = trained_before or {}  # the resumed file's train blocks by (model, backend)
        self.resume = resume
        self.reused: set[str] = set()  # trained rerankers whose training was kept from the resumed file
        self.held: dict[tuple[str, str], int] = {}  # (dataset, reranker) -> index in runs, until its step's run
        self.held_train: dict[tuple[str, str], int] = {}  # (model, backend) -> index in train.models
        self.done = 0

    def save(self) -> None:
        self.writer.save(document(self.results))

    def hold(self, runs: list[Run]) -> None:
        """Put the resumed file's runs and training blocks in the file before anything else runs: each stays
        there until its step gives a run in its place, so an interruption at any point loses none of them."""
        for run in runs:
            self.held[(run.dataset, run.reranker)] = len(self.results.runs)
            self.results.runs.append(run)
        if self.results.train is not None:
            for key, block in self.trained_before.items():
                self.held_train[key] = len(self.results.train.models)
                self.results.train.models.append(TrainBlock.model_validate(block))
        self.save()

    def record(self, run: Run, kept: bool = False) -> None:
        _put(self.results.runs, self.held.pop((run.dataset, run.reranker), None), run)
        self.save()
        self.done += 1
        note = " (kept from the resumed file)" if kept else ""
        self.log(f"[{self.done}/{self.total}] {run.reranker} on {run.dataset}: {_describe(run)}{note}")

    def record_train(self, job) -> None:
        block = TrainBlock.model_validate(job.block)
        _put(self.results.train.models, self.held_train.pop((job.model.name, job.backend), None), block)
        self.save()

    def dataset(self, spec, steps: list[Step], index: int) -> None:
        """Load one dataset, then run its steps; a dataset that cannot be loaded makes each step an error run."""
        from ..sources import load_dataset

        try:
            ds = load_dataset(spec, max_queries=self.max_queries, seed=self.suite.seed)
            fingerprint = ds.fingerprint()
            if self.shard is not None:  # the shard's queries of the loaded, cut dataset
                full = fingerprint
                ds = shard_dataset(ds, self.shard)
                fingerprint = ds.fingerprint()
            protocol = dataset_protocol(ds, spec, self.suite.seed, fingerprint)
            if self.shard is not None:
                protocol.update(
                    shard=self.shard.model_dump(),
                    full_dataset_fingerprint=full,
                    n_queries=len(ds.candidates),
                    n_pairs=sum(len(c) for c in ds.candidates.values()),
                )
        except Exception as exc:  # every run on this dataset is an error; other datasets go on
            message = f"dataset {spec.name} could not be loaded: {type(exc).__name__}: {exc}"
            base = {
                "first_stage": spec.first_stage,
                "top_k": spec.top_k,
                "relevance_level": spec.relevance_level,
                "max_queries": self.max_queries if self.max_queries is not None else spec.max_queries,
                "seed": self.suite.seed,
            }
            for step in steps:
                extra = {"train": step.job.block} if step.kind == "trained" else {}
                prepared = self.prepared.get(step.reranker)
                reranker_protocol = prepared.protocol if prepared is not None else {}
                self.record(
                    error_run(spec.name, step.reranker, step.backend, {**base, **reranker_protocol}, message, **extra)
                )
            return
        self.empty = None  # a shard without any query of this dataset: nothing to measure (harness merge skips it)
        if self.shard is not None and not ds.candidates and not any(ds.qrels.values()):
            self.empty = f"{EMPTY_SHARD}: shard {self.shard} holds no query of dataset {ds.name}"
        dataset_file = write_dataset_file(ds, fingerprint, self.workdir / f"dataset-{index}.json")
        for step in steps:
            try:
                run, kept = self.step(step, ds, protocol, dataset_file)
            except Exception as exc:  # a harness bug must not lose the other runs either
                message = f"{type(exc).__name__}: {exc}"
                run, kept = error_run(ds.name, step.reranker, step.backend, protocol, message), False
            if step.kind == "trained" and not kept:
                run.train = TrainBlock.model_validate(step.job.block)
            self.record(run, kept)

    def _kept(self, step: Step, protocol: dict[str, Any]) -> Run | None:
        """The resumed file's ok run of this step, when it saw the same candidates and the same weights."""
        old = self.kept.get((step.dataset.name, step.reranker))
        if old is None or old.status != "ok":
            return None
        if (old.train is not None) != (step.kind == "trained"):
            return None
        if step.kind == "trained":  # only a run of the very training kept from the resumed file
            if step.reranker not in self.reused or document_of(old.train) != document_of(step.job.block):
                return None
        if old.protocol.dataset_fingerprint != protocol["dataset_fingerprint"]:
            return None
        if step.kind == "first_stage":
            return old
        now = self.prepared[step.reranker].protocol
        same = all(getattr(old.protocol, k) == now.get(k) for k in ("model_fingerprint", "max_length", "dtype"))
        return old if same else None

    def step(self, step: Step, ds, protocol: dict[str, Any], dataset_file: Path) -> tuple[Run, bool]:
        """One step's run, and whether it was kept from the resumed file."""
        if (step.kind != "trained" or step.job.spec is not None) and (old := self._kept(step, protocol)) is not None:
            return old, True
        if step.kind == "first_stage":
            if self.empty:
                return error_run(
                    ds.name, ds.first_stage, FIRST_STAGE, {**protocol, "scoring": "first-stage order"}, self.empty
                ), False
            try:
                return first_stage_run(ds, self.results.metrics, protocol), False
            except Exception as exc:
                message = f"first-stage evaluation failed: {type(exc).__name__}: {exc}"
                return error_run(ds.name, ds.first_stage, FIRST_STAGE, protocol, message), False
        if step.kind == "trained" and step.job.spec is None:
            message = f"training failed: {step.job.block['error'].splitlines()[0]}"
            return error_run(
                ds.name, step.reranker, step.backend, {**protocol, "model": step.job.model.base}, message
            ), False
        prepared = self.prepared[step.reranker]
        measure = self.suite.measure
        protocol = {
            **protocol,
            **prepared.protocol,
            "warmup_queries": measure.warmup_queries,
            "repeats": measure.repeats,
            "scenarios": list(measure.scenarios),
            "min_time_s": measure.min_time_s,
            "max_repeats": measure.max_repeats,
        }
        if prepared.error or self.empty:
            return error_run(ds.name, step.reranker, step.backend, protocol, prepared.error or self.empty), False
        job = MeasureJob(
            reranker=prepared.spec,
            backend_module=prepared.module,
            model_dir=prepared.model_dir,
            max_length=prepared.max_length,
            dataset_file=str(dataset_file),
            warmup_queries=measure.warmup_queries,
            repeats=measure.repeats,
            min_time_s=measure.min_time_s,
            max_repeats=measure.max_repeats,
            scenarios=list(measure.scenarios),
            scenario_options=measure.scenario_options,
            progress=self.progress,
            suite_file=str(self.suite.path) if self.suite.path else None,
        )
        result = spawn_worker(job.model_dump(mode="json"), self.workdir, self.timeout_s, self.progress)
        run = scored_run(ds, step.reranker, step.backend, protocol, result, self.results.metrics)
        if run.status == "ok" and run.scenarios:
            run.verdict, run.scenarios = judge_records(run.scenarios, measure)  # each record gets its verdict too
        return run, False


def _selection(suite, only, max_queries, train_max_pairs, shard: Shard | None, trains: bool) -> dict[str, Any]:
    """The results file's ``selection`` (part of the suite fingerprint), the options checked first."""
    if max_queries is not None and max_queries < 1:
        raise ValueError(f"--max-queries must be >= 1, got {max_queries}")
    if train_max_pairs is not None and train_max_pairs < 1:
        raise ValueError(f"--train-max-pairs must be >= 1, got {train_max_pairs}")
    if shard is not None and trains:
        from ..suite import SuiteError

        raise SuiteError(f"--shard: suite {suite.name!r} has a train: section (each shard would train its own models)")
    selection = {"only": list(only) if only else None, "max_queries": max_queries}
    if suite.train is not None:
        selection["train_max_pairs"] = train_max_pairs
    if shard is not None:
        selection["shard"] = str(shard)
    return selection


def run_suite(
    suite,
    *,
    output: str | Path | None = None,
    only: Sequence[str] | None = None,
    max_queries: int | None = None,
    timeout_s: float | None = DEFAULT_TIMEOUT_S,
    progress: bool = True,
    environment: dict[str, Any] | None = None,
    log: Callable[[str], None] = _stderr,
    train_max_pairs: int | None = None,
    overwrite: bool = False,
    resume: bool = False,
    shard: Shard | None = None,
) -> tuple[dict[str, Any], Path]:
    """Run ``suite`` (a ``harness.suite.Suite``); returns the results and where they were written.

    ``train_max_pairs`` caps every model's training pairs (a reduced trial of a training suite). ``shard`` runs
    only that shard's queries of every dataset (``harness.run.shard``; recorded in ``selection.shard`` and each
    run's protocol; not for suites with a ``train:`` section). On an
    interruption or a harness error the file is saved with ``complete: false`` and the exception is re-raised
    with ``results_path`` set on it.
    """
    rerankers, datasets, train_selected = select_all(suite, only)
    selection = _selection(suite, only, max_queries, train_max_pairs, shard, bool(train_selected))
    fingerprint = suite_fingerprint(suite, selection)  # the shard is not part of it: shards of one suite merge
    path, lock, kept, trained_before = open_output(
        suite.name, output, fingerprint, overwrite, resume, selection.get("shard")
    )
    writer = ResultsWriter(path, log)
    results: ResultsFile | None = None
    try:
        with signals_interrupt():
            plan = None
            if train_selected:  # data built and checked held out from every suite dataset before anything runs
                from ..train.plan import plan_training

                plan = plan_training(suite, train_selected, train_root(path), train_max_pairs, progress)
            steps = plan_steps(datasets, rerankers, plan.jobs if plan is not None else [])
            selected = {(s.dataset.name, s.reranker) for s in steps}  # --resume --only X: other runs kept as is
            carried = [old for key, old in kept.items() if key not in selected]
            with tempfile.TemporaryDirectory(prefix="harness-run-") as tmp:
                results = header(suite, selection, fingerprint, environment, plan)
                run = Execution(
                    suite,
                    results,
                    writer,
                    Path(tmp),
                    kept,
                    max_queries=max_queries,
                    timeout_s=timeout_s,
                    progress=progress,
                    log=log,
                    total=len(carried) + len(steps),
                    shard=shard,
                    trained_before=trained_before,
                    resume=resume,
                )
                run.hold(list(kept.values()))  # the first save already holds every run of the resumed file
                for old in carried:
                    run.record(old, kept=True)
                run.prepared.update({spec.name: prepare_reranker(spec) for spec in rerankers})
                if plan is not None:
                    train_models(run, plan)
                for index, (_, group) in enumerate(itertools.groupby(steps, key=lambda s: s.dataset.name)):
                    group = list(group)
                    run.dataset(group[0].dataset, group, index)
        results.complete, results.incomplete_reason = True, None
        writer.save(document(results))
        return document(results), writer.path
    except BaseException as exc:
        stopped(exc, results, writer, path)
        raise
    finally:
        lock.release()
