"""Run a suite: plan the steps, then one loop measures each in its own worker and stores results as they come.

Flow: ``select_all`` (``--only``) -> ``open_output`` (lock, refuse an existing file unless ``--overwrite`` or
``--resume``) -> training (suites with a ``train:`` section: ``harness.train.plan``, one ``harness.train.worker``
per model and backend) -> ``plan_steps`` -> for each dataset: load it once (fingerprint recorded), write its
candidates for the workers, then run each step: the first stage (evaluated here), each reranker and each trained
model (``harness.run.spawn`` -> ``harness.run.worker``; scores evaluated here with ``harness.metrics``).

A worker that raises, crashes, is killed or times out becomes a run with ``status: "error"`` (``error_run``); the
other runs go on. The results file is rewritten atomically after every step; a save that fails goes to a fallback
path once. Ctrl-C, SIGTERM and SIGHUP stop the run: the worker's process group is killed, the temporary folder
removed, and the file saved with ``"complete": false`` and the reason. ``--resume`` keeps the ok runs of a file
written with the same suite fingerprint (same settings, same selection) and the same candidates and weights; they
are in the file from its first save (``Execution.hold``), so no interruption can drop them. A training kept from
the resumed file (ok, same plan, its weights unchanged) is not redone; any other trains in ``.<name>.partial/``,
which replaces the model folder only when it succeeded (``Execution.train_job``; MLX trainers resume a partial
training of the same job from its checkpoint).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..environment import capture_environment
from ..results import (
    FIRST_STAGE,
    SCHEMA_VERSION,
    OutputLock,
    ResultsError,
    ResultsFile,
    ResultsWriter,
    Run,
    TrainBlock,
    check_writable,
    claim_default_output,
    load_results,
)
from .interrupt import signals_interrupt, stop_reason
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
from .verdict import judge_records
from .worker import MeasureJob

DEFAULT_TIMEOUT_S = 4 * 3600
TRAIN_WORKER = "harness.train.worker"
#: trainers that continue an interrupted training from the latest checkpoint in their folder
#: (``resume_from_checkpoint``; MLX: ``mlx_cross_encoder.training.checkpoint``)
RESUMABLE_TRAINERS = {"harness.train.worker:train_mlx_cross_encoder", "harness.train.worker:train_mlx_llm"}
JOB_RECORD = "job.json"  # in a training's folder: the job it was started with (what a resumed training must equal)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def open_output(
    suite_name: str,
    output: str | Path | None,
    fingerprint: str,
    overwrite: bool = False,
    resume: bool = False,
    shard: str | None = None,
) -> tuple[Path, OutputLock, dict[tuple[str, str], Run], dict[tuple[str, str], dict]]:
    """The locked results path and, with ``resume``, the file's runs (by (dataset, reranker)) and training blocks
    (by (model, backend)): an ok run is kept instead of measuring its step again; one outside this selection
    (``--only``) is carried over as it is; an ok training whose folder is unchanged is not trained again.

    An existing file is refused unless ``overwrite`` (replace it) or ``resume`` (keep its ok runs: only for a
    file of the same suite fingerprint). Without ``output`` the default name is claimed exclusively."""
    if overwrite and resume:
        raise ResultsError("--overwrite and --resume exclude each other")
    if output is None:
        if resume:
            raise ResultsError("--resume needs --output (the results file to complete)")
        path = claim_default_output(suite_name)
        return path, OutputLock(path).acquire(), {}, {}
    path = Path(output)
    check_writable(path, "--output")
    lock = OutputLock(path).acquire()
    try:
        if not path.exists() or path.stat().st_size == 0 or overwrite:
            return path, lock, {}, {}
        if not resume:
            raise ResultsError(f"{path} already exists; use --overwrite to replace it or --resume to complete it")
        old = load_results(path)
        if old["suite"] != suite_name or old.get("fingerprint") != fingerprint:
            raise ResultsError(
                f"{path}: cannot --resume it: it was written by suite {old['suite']!r} with other "
                "settings or selection; use --overwrite or another --output"
            )
        if (old.get("selection") or {}).get("shard") != shard:
            raise ResultsError(
                f"{path}: cannot --resume it: selection.shard is {(old.get('selection') or {}).get('shard')!r}, "
                f"this run's is {shard!r}"
            )
        runs = {(r["dataset"], r["reranker"]): Run.model_validate(r) for r in old["runs"]}
        trained = {(b["model"], b["backend"]): b for b in (old.get("train") or {}).get("models") or []}
        return path, lock, runs, trained
    except BaseException:
        lock.release()
        raise


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


def _train_summary(block: dict[str, Any]) -> str:
    if block["status"] != "ok":
        return f"error: {block['error'].splitlines()[0]}"
    parts = [f"{block['steps']} steps", f"{block['wall_time_s']:.1f} s wall ({block['train_time_s']:.1f} s training)"]
    if block.get("tokens_per_s"):
        parts.append(f"{block['tokens_per_s']:.0f} tokens/s")
    if block.get("best_dev") is not None:
        parts.append(f"best dev nDCG@10 {block['best_dev']:.4f} at step {block['best_step']}")
    return "ok: " + ", ".join(parts)


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
        index = self.held.pop((run.dataset, run.reranker), None)
        if index is None:
            self.results.runs.append(run)
        else:
            self.results.runs[index] = run
        self.save()
        self.done += 1
        note = " (kept from the resumed file)" if kept else ""
        self.log(f"[{self.done}/{self.total}] {run.reranker} on {run.dataset}: {_describe(run)}{note}")

    def record_train(self, job) -> None:
        block = TrainBlock.model_validate(job.block)
        index = self.held_train.pop((job.model.name, job.backend), None)
        if index is None:
            self.results.train.models.append(block)
        else:
            self.results.train.models[index] = block
        self.save()

    def train(self, plan) -> None:
        """Every training job of ``plan`` in its own worker; a failed one is recorded, the others go on."""
        from ..train.plan import train_block, trained_reranker

        n_jobs = len(plan.jobs)
        self.log(
            f"training {n_jobs} model{'s' * (n_jobs != 1)} on {plan.summary['n_pairs']} judged pairs of "
            f"{plan.summary['n_queries']} queries ({plan.summary['n_dev_queries']} dev queries) into "
            f"{plan.root}"
        )
        for number, job in enumerate(plan.jobs, 1):
            job.block["base_fingerprint"] = _base_fingerprint(job.model.base)
            old = self.trained_before.get((job.model.name, job.backend)) if self.resume else None
            note = ""
            if old is not None and _same_training(job, old):
                job.block, note = old, " (kept from the resumed file: not trained again)"
                self.reused.add(job.reranker)
            else:
                try:
                    result = self.train_job(job)
                except Exception as exc:  # a harness bug must not lose the other trainings
                    result = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
                job.block = train_block(job, result)
            if job.block["status"] == "ok":
                job.spec = trained_reranker(job)
                self.prepared[job.reranker] = prepare_reranker(job.spec)
            self.record_train(job)
            self.log(f"[train {number}/{n_jobs}] {job.reranker}: {_train_summary(job.block)}{note}")

    def train_job(self, job) -> dict[str, Any]:
        """Train ``job`` in ``.<name>.partial/`` beside its folder, which replaces the folder only once the
        training succeeded: a good trained model is never deleted before its replacement exists. With --resume, a
        partial training of the same job continues from its checkpoint when its trainer can."""
        final, partial = Path(job.out_dir), Path(job.out_dir).parent / f".{Path(job.out_dir).name}.partial"
        spec = {**job.job, "output_dir": str(partial)}
        record = {k: v for k, v in spec.items() if k != "progress"}
        resumable = (
            self.resume
            and spec["trainer"] in RESUMABLE_TRAINERS
            and _read_json(partial / JOB_RECORD) == record
            and any((partial / "mlx-trainer" / "checkpoints").glob("step-*/state.json"))
        )
        if resumable:
            spec["settings"] = {**spec["settings"], "resume_from_checkpoint": True}
            self.log(f"{job.reranker}: resuming the interrupted training from its checkpoint in {partial}")
        else:
            shutil.rmtree(partial, ignore_errors=True)  # a partial training: never a model anyone evaluated
            partial.mkdir(parents=True)
            (partial / JOB_RECORD).write_text(json.dumps(record, indent=1, sort_keys=True))
        result = spawn_worker(spec, self.workdir, self.timeout_s, self.progress, module=TRAIN_WORKER)
        if result.get("status") != "ok":
            return result  # the partial folder stays (a later --resume continues it); the old folder too
        if resumable:
            result["resumed_from_checkpoint"] = True
        old = final.parent / f".{final.name}.old"
        shutil.rmtree(old, ignore_errors=True)
        if final.exists():
            os.rename(final, old)  # the good old model is set aside only now that its replacement is complete
        os.rename(partial, final)
        shutil.rmtree(old, ignore_errors=True)
        result = _moved(result, str(partial), str(final))
        return _moved(result, str(partial.absolute()), str(final.absolute()))

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
        )
        result = spawn_worker(job.model_dump(mode="json"), self.workdir, self.timeout_s, self.progress)
        run = scored_run(ds, step.reranker, step.backend, protocol, result, self.results.metrics)
        if run.status == "ok" and run.scenarios:
            run.verdict, run.scenarios = judge_records(run.scenarios, measure)  # each record gets its verdict too
        return run, False


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def document_of(value: Any) -> Any:
    """A record or a plain mapping as the JSON data a results file holds (for comparing the two)."""
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return json.loads(json.dumps(value))


def _base_fingerprint(base: str) -> str | None:
    """The base model's weights fingerprint (None when it cannot be resolved here: the training will say why)."""
    from .. import backends

    try:
        return backends.weights_fingerprint(backends.resolve_model_dir(base))
    except Exception:
        return None


def _same_training(job, old: dict[str, Any]) -> bool:
    """Whether the resumed file's training block ``old`` is this job's, complete and unchanged: ok, the same
    planned settings, data and base (every key the plan sets; the base weights' fingerprint when the old file
    recorded one), and its model folder still holding the weights it recorded."""
    from .. import backends

    if old.get("status") != "ok" or not old.get("model_dir") or not old.get("model_fingerprint"):
        return False
    planned = document_of(job.block)
    for key, value in planned.items():
        if key == "status" or (key == "base_fingerprint" and "base_fingerprint" not in old):
            continue
        if old.get(key) != value:
            return False
    model_dir = Path(old["model_dir"])
    if not model_dir.is_relative_to(job.out_dir) or not model_dir.is_dir():
        return False
    if old.get("adapter_dir") and not Path(old["adapter_dir"]).exists():
        return False
    try:
        return backends.weights_fingerprint(model_dir) == old["model_fingerprint"]
    except Exception:
        return False


def _moved(value: Any, old: str, new: str) -> Any:
    """``value`` with the paths under ``old`` renamed to under ``new`` (a worker result after its folder moved)."""
    if isinstance(value, str):
        return new + value[len(old) :] if value == old or value.startswith(old + os.sep) else value
    if isinstance(value, dict):
        return {k: _moved(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_moved(v, old, new) for v in value]
    return value


def document(results: ResultsFile) -> dict[str, Any]:
    """The results file as JSON data: the keys each record was given (``exclude_unset``), ``schema`` by name."""
    return results.model_dump(mode="json", by_alias=True, exclude_unset=True)


def _header(suite, selection: dict, fingerprint: str, environment: dict | None, plan) -> ResultsFile:
    results: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "suite": suite.name,
        "suite_path": str(suite.path) if suite.path else None,
        "baseline": suite.baseline,
        "metrics": list(suite.metrics),
        "measure": suite.measure.model_dump(mode="json"),
        "gate": suite.gate.model_dump(mode="json"),  # harness compare reads it (verdict)
        "seed": suite.seed,
        "selection": selection,
        "fingerprint": fingerprint,
        "complete": False,
        "incomplete_reason": "in progress (or stopped without a chance to say so: killed, power cut)",
        "environment": environment if environment is not None else capture_environment(),
        "runs": [],
    }
    if plan is not None:
        results["train"] = plan.summary
    return ResultsFile.model_validate(results)


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
    if max_queries is not None and max_queries < 1:
        raise ValueError(f"--max-queries must be >= 1, got {max_queries}")
    if train_max_pairs is not None and train_max_pairs < 1:
        raise ValueError(f"--train-max-pairs must be >= 1, got {train_max_pairs}")
    if shard is not None and train_selected:
        from ..suite import SuiteError

        raise SuiteError(f"--shard: suite {suite.name!r} has a train: section (each shard would train its own models)")
    selection = {"only": list(only) if only else None, "max_queries": max_queries}
    if suite.train is not None:
        selection["train_max_pairs"] = train_max_pairs
    if shard is not None:
        selection["shard"] = str(shard)
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
                results = _header(suite, selection, fingerprint, environment, plan)
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
                    run.train(plan)
                for index, (_, group) in enumerate(itertools.groupby(steps, key=lambda s: s.dataset.name)):
                    group = list(group)
                    run.dataset(group[0].dataset, group, index)
        results.complete, results.incomplete_reason = True, None
        writer.save(document(results))
        return document(results), writer.path
    except BaseException as exc:
        _stopped(exc, results, writer, path)
        raise
    finally:
        lock.release()


def _stopped(exc: BaseException, results: ResultsFile | None, writer: ResultsWriter, path: Path) -> None:
    """Save what was measured, marked incomplete with the reason; tell the caller where it is."""
    if results is None:  # stopped before anything was written: leave no empty claimed file behind
        if path.is_file() and path.stat().st_size == 0:
            path.unlink()
        return
    results.complete, results.incomplete_reason = False, stop_reason(exc)
    try:
        writer.save(document(results))
    except Exception as save_exc:  # already on the fallback and it failed too: say so, keep the first error
        print(f"harness: could not save the results ({save_exc})", file=sys.stderr)
    try:
        exc.results_path = writer.path  # type: ignore[attr-defined]
    except AttributeError:
        pass
