"""Run a suite: every (reranker, dataset) measured in its own worker process, results stored as they come.

The parent process loads each dataset once (recording its fingerprint) and hands the very same candidates to
every reranker's worker (``harness.run.worker``) through a JSON file; it resolves each reranker's model directory,
truncation length and dtype once, so paired backends (e.g. MLX and PyTorch on one checkpoint) get identical
inputs. A worker that raises, crashes, is killed (typically by the OOM killer) or times out becomes a run with
``status: "error"`` and the message; the other runs go on. Quality is evaluated here, with
``harness.metrics.evaluate``, on the scores of the first timed pass; the first stage is a run of its own.

A suite with a ``train:`` section first trains (``harness.training``: data, dev split, held-out check; one
``harness.train_worker`` process per model and backend, failures recorded the same way), then evaluates every
trained model as a reranker named ``<model>-<backend>``; those runs carry a ``train`` block.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .. import backends
from ..environment import REPO_ROOT, capture_environment
from ..results import FIRST_STAGE, SCHEMA_VERSION, default_output, save_results

DEFAULT_TIMEOUT_S = 4 * 3600
OUTPUT_TAIL_BYTES = 4000


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def select(suite, only: Sequence[str] | None) -> tuple[list, list]:
    """(rerankers, datasets) of the suite kept by ``--only`` names (each a reranker, a dataset, or a train model /
    trained reranker name)."""
    rerankers, datasets, _ = select_all(suite, only)
    return rerankers, datasets


def select_all(suite, only: Sequence[str] | None) -> tuple[list, list, list]:
    """(rerankers, datasets, (train model, backend) pairs) kept by ``--only``: naming any reranker (plain, train
    model ``minilm-full`` or trained ``minilm-full-mlx``) keeps only the named ones; naming datasets keeps only
    those datasets."""
    from ..suite import SuiteError
    from ..training import selected_jobs, train_names

    rerankers, datasets = list(suite.rerankers), list(suite.datasets)
    train = getattr(suite, "train", None)
    if not only:
        return rerankers, datasets, selected_jobs(train, None) if train is not None else []
    r_names, d_names, t_names = {r.name for r in rerankers}, {d.name for d in datasets}, train_names(train)
    unknown = [n for n in only if n not in r_names | d_names | t_names]
    if unknown:
        trained = f"; trained: {', '.join(sorted(t_names))}" if t_names else ""
        raise SuiteError(
            f"--only {', '.join(unknown)}: not a reranker or dataset of suite {suite.name!r} "
            f"(rerankers: {', '.join(sorted(r_names)) or 'none'}; datasets: {', '.join(sorted(d_names))}{trained})"
        )
    jobs = selected_jobs(train, None) if train is not None else []
    if any(n in r_names | t_names for n in only):
        rerankers = [r for r in rerankers if r.name in only]
        jobs = selected_jobs(train, set(only)) if train is not None else []
    if any(n in d_names for n in only):
        datasets = [d for d in datasets if d.name in only]
    return rerankers, datasets, jobs


def train_root(results_path: Path) -> Path:
    """Where a run's trained models go: ``results/<suite>-<ts>.json`` -> ``results/<suite>-<ts>.train/``."""
    results_path = Path(results_path)
    return results_path.with_name(results_path.stem + ".train") if results_path.suffix else \
        results_path.with_name(results_path.name + ".train")  # fmt: skip


def prepare_reranker(spec) -> dict[str, Any]:
    """Resolve once, in the parent: model directory, truncation length, dtype, weights fingerprint."""
    fields = spec.model_dump(mode="json")  # a harness.suite.RerankerSpec, handed to the worker as is
    protocol: dict[str, Any] = {
        "model": spec.model,
        "instruction": fields["instruction"],
        "dtype": fields["dtype"],
        "batch_size": fields["batch_size"],
        "device_requested": fields["device"],
        "options": fields["options"],
    }
    prepared: dict[str, Any] = {"spec": fields, "protocol": protocol, "error": None}
    try:
        module = backends.backend_module(spec.backend)
        protocol["dtype"] = backends.canonical_dtype(fields["dtype"])
        model_dir = backends.resolve_model_dir(spec.model)
        max_length, source = backends.resolve_max_length(model_dir, fields["max_length"])
        protocol.update(
            model_path=str(model_dir),
            model_fingerprint=backends.weights_fingerprint(model_dir),
            max_length=max_length,
            max_length_source=source,
        )
        prepared.update(model_dir=str(model_dir), max_length=max_length, module=module)
    except Exception as exc:  # recorded as an error run per dataset; the other rerankers go on
        prepared["error"] = f"{type(exc).__name__}: {exc}"
    return prepared


def dataset_protocol(ds, spec, seed: int, fingerprint: str) -> dict[str, Any]:
    """How the candidates were made (the loader's own record first): identical for every system compared."""
    protocol = dict(ds.protocol or {})
    protocol["first_stage"] = ds.first_stage
    protocol["relevance_level"] = ds.relevance_level
    protocol.setdefault("top_k", getattr(spec, "top_k", None))
    protocol.setdefault("add_judged_positives", getattr(spec, "add_judged_positives", False))
    protocol.setdefault("max_queries", getattr(spec, "max_queries", None))
    protocol.setdefault("seed", seed)
    protocol.setdefault("n_queries", len(ds.candidates))
    protocol.setdefault("n_pairs", sum(len(c) for c in ds.candidates.values()))
    protocol.setdefault("source", ds.source)
    protocol["dataset_fingerprint"] = fingerprint
    return protocol


def write_dataset_file(ds, fingerprint: str, path: Path) -> Path:
    """What a worker needs (no qrels): queries and candidate texts in first-stage order."""
    queries = [
        {"qid": qid, "query": ds.queries[qid], "docids": [c.docid for c in cands], "texts": [c.text for c in cands]}
        for qid, cands in ds.candidates.items()
        if cands
    ]
    path.write_text(json.dumps({"name": ds.name, "fingerprint": fingerprint, "queries": queries}))
    return path


def first_stage_run(ds, metrics: list[str], protocol: dict[str, Any]) -> dict[str, Any]:
    """The first stage evaluated in its stored order (score = candidates - position, so ties cannot reorder it)."""
    from ..metrics import evaluate

    run = {qid: {c.docid: float(len(cands) - i) for i, c in enumerate(cands)} for qid, cands in ds.candidates.items()}
    means, per_query = evaluate(ds.qrels, run, metrics, ds.relevance_level)
    return {
        "dataset": ds.name,
        "reranker": ds.first_stage,
        "backend": FIRST_STAGE,
        "device": None,
        "status": "ok",
        "metrics": means,
        "per_query": per_query,
        "protocol": {**protocol, "scoring": "first-stage order"},
    }


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _pump(stream, sink: Callable[[str], None] | None, tail: deque) -> None:
    """Copy a worker's output (progress bars, logs) to our stderr, keeping its tail for error messages."""
    while chunk := os.read(stream.fileno(), 4096):
        text = chunk.decode(errors="replace")
        tail.append(text)
        while sum(len(t) for t in tail) > OUTPUT_TAIL_BYTES and len(tail) > 1:
            tail.popleft()
        if sink is not None:
            sink(text)


def _tail_lines(tail: deque, n: int = 8) -> str:
    lines = [line.rstrip() for line in "".join(tail).replace("\r", "\n").splitlines() if line.strip()]
    return "\n".join(lines[-n:])


def run_worker(job: dict[str, Any], workdir: Path, timeout_s: float | None, progress: bool = True,
               module: str = "harness.run.worker") -> dict[str, Any]:  # fmt: skip
    """Run one job in ``python -m <module>`` (``harness.run.worker``, or ``harness.train_worker`` for training);
    always returns a result dict (status ok or error)."""
    index = len(list(workdir.glob("job-*.json")))
    job_file, result_file = workdir / f"job-{index}.json", workdir / f"result-{index}.json"
    job_file.write_text(json.dumps(job))
    env = dict(os.environ)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    proc = subprocess.Popen(
        [sys.executable, "-m", module, str(job_file), str(result_file)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,  # its own process group: a timeout kills the worker and anything it started
    )
    tail: deque = deque()
    sink = (lambda text: (sys.stderr.write(text), sys.stderr.flush())) if progress else None
    pump = threading.Thread(target=_pump, args=(proc.stdout, sink, tail), daemon=True)
    pump.start()
    timed_out = False
    try:
        code = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
        code = proc.wait()
    except BaseException:  # Ctrl-C in the parent: do not leave the worker running
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
        proc.wait()
        raise
    pump.join(timeout=10)
    proc.stdout.close()

    output = _tail_lines(tail)
    if timed_out:
        return {"status": "error", "error": f"timed out after {timeout_s:g} s (worker killed)", "log_tail": output}
    if result_file.is_file():
        try:
            result = json.loads(result_file.read_text())
        except json.JSONDecodeError as exc:
            return {"status": "error", "error": f"worker wrote an unreadable result ({exc})", "log_tail": output}
        if result.get("status") == "ok" and code != 0:
            return {"status": "error", "error": f"worker exited with status {code} after writing its result",
                    "log_tail": output}  # fmt: skip
        return result
    if code < 0:
        name = _signal_name(-code)
        message = "killed (likely out of memory)" if -code == signal.SIGKILL else f"crashed ({name})"
        return {"status": "error", "error": f"worker {message}", "signal": name, "log_tail": output}
    last = output.splitlines()[-1] if output else "no output"
    message = f"worker exited with status {code} without a result: {last}"
    return {"status": "error", "error": message, "log_tail": output}


def _error_run(dataset: str, reranker: str, backend: str, protocol: dict[str, Any], message: str, **extra):
    return {
        "dataset": dataset,
        "reranker": reranker,
        "backend": backend,
        "device": None,
        "status": "error",
        "error": message,
        "metrics": {},
        "per_query": {},
        "protocol": protocol,
        **extra,
    }


def reranker_run(ds, spec, prepared, protocol, metrics, measure, workdir, dataset_file, timeout_s, progress):
    """Measure one reranker on one loaded dataset (worker process), then evaluate its scores here."""
    from ..metrics import evaluate

    protocol = {**protocol, **prepared["protocol"], "warmup_queries": measure.warmup_queries,
                "repeats": measure.repeats}  # fmt: skip
    if prepared["error"]:
        return _error_run(ds.name, spec.name, spec.backend, protocol, prepared["error"])
    job = {
        "reranker": prepared["spec"],
        "backend_module": prepared["module"],
        "model_dir": prepared["model_dir"],
        "max_length": prepared["max_length"],
        "dataset_file": str(dataset_file),
        "warmup_queries": measure.warmup_queries,
        "repeats": measure.repeats,
        "progress": progress,
    }
    result = run_worker(job, workdir, timeout_s, progress)
    if result.get("status") != "ok":
        extra = {k: result[k] for k in ("traceback", "signal", "log_tail") if result.get(k)}
        message = result.get("error") or "unknown worker failure"
        return _error_run(ds.name, spec.name, spec.backend, protocol, message, **extra)
    scored = {}
    for qid, cands in ds.candidates.items():
        scores = result["scores"].get(qid, [])
        if len(scores) != len(cands):
            message = f"worker returned {len(scores)} scores for query {qid}, which has {len(cands)} candidates"
            return _error_run(ds.name, spec.name, spec.backend, protocol, message)
        scored[qid] = {c.docid: s for c, s in zip(cands, scores)}
    try:
        means, per_query = evaluate(ds.qrels, scored, metrics, ds.relevance_level)
    except ValueError as exc:  # e.g. NaN scores
        message = f"evaluation failed: {exc}"
        return _error_run(ds.name, spec.name, spec.backend, protocol, message, warnings=result.get("warnings", []))
    return {
        "dataset": ds.name,
        "reranker": spec.name,
        "backend": spec.backend,
        "device": result["device"],
        "status": "ok",
        "metrics": means,
        "perf": result["perf"],
        "protocol": protocol,
        "per_query": per_query,
        "latency_samples_ms": result["latency_samples_ms"],
        "system": result["system"],
        "warnings": result.get("warnings", []),
    }


def _train_summary(block: dict[str, Any]) -> str:
    if block["status"] != "ok":
        return f"error: {block['error'].splitlines()[0]}"
    parts = [f"{block['steps']} steps", f"{block['wall_time_s']:.1f} s wall ({block['train_time_s']:.1f} s training)"]
    if block.get("tokens_per_s"):
        parts.append(f"{block['tokens_per_s']:.0f} tokens/s")
    if block.get("best_dev") is not None:
        parts.append(f"best dev nDCG@10 {block['best_dev']:.4f} at step {block['best_step']}")
    return "ok: " + ", ".join(parts)


def run_training(plan, workdir: Path, timeout_s: float | None, progress: bool, on_done: Callable) -> None:
    """Train every job of ``plan`` (``harness.training.TrainingPlan``), each in its own worker process; a failed
    one is recorded (``block["status"] == "error"``) and the others go on."""
    from ..training import train_block, trained_reranker

    for job in plan.jobs:
        shutil.rmtree(job.out_dir, ignore_errors=True)  # a rerun with the same --output trains afresh
        try:
            result = run_worker(job.job, workdir, timeout_s, progress, module="harness.train_worker")
        except Exception as exc:  # a harness bug must not lose the other trainings
            result = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
        job.block = train_block(job, result)
        if job.block["status"] == "ok":
            job.spec = trained_reranker(job)
        on_done(job)


def _describe(run: dict[str, Any]) -> str:
    if run["status"] != "ok":
        return f"error: {run['error'].splitlines()[0]}"
    parts = [f"{m} {v:.4f}" for m, v in list(run["metrics"].items())[:2] if v is not None]
    if run.get("perf"):
        parts.append(f"{run['perf']['pairs_per_s']:.1f} pairs/s on {run['device']}")
    return "ok: " + ", ".join(parts)


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
) -> tuple[dict[str, Any], Path]:
    """Run ``suite`` (a ``harness.suite.Suite``); returns the results and where they were written.

    The results file is rewritten (atomically) after every run, so an interrupted suite keeps what it measured.
    With a ``train:`` section the models are trained first (into ``<results>.train/``, see ``train_root``);
    ``train_max_pairs`` caps every model's training pairs (a reduced trial of a training suite).
    """
    from ..sources import load_dataset

    rerankers, datasets, train_selected = select_all(suite, only)
    if max_queries is not None and max_queries < 1:
        raise ValueError(f"--max-queries must be >= 1, got {max_queries}")
    if train_max_pairs is not None and train_max_pairs < 1:
        raise ValueError(f"--train-max-pairs must be >= 1, got {train_max_pairs}")
    path = Path(output) if output else default_output(suite.name)
    plan = None
    if train_selected:
        from ..training import plan_training

        # data built and checked held out from every suite dataset before anything is written or trained
        plan = plan_training(suite, train_selected, train_root(path), train_max_pairs, progress)
    measure = suite.measure
    results: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "suite": suite.name,
        "suite_path": str(suite.path) if getattr(suite, "path", None) else None,
        "baseline": suite.baseline,
        "metrics": list(suite.metrics),
        "measure": {"warmup_queries": measure.warmup_queries, "repeats": measure.repeats},
        "seed": suite.seed,
        "selection": {"only": list(only) if only else None, "max_queries": max_queries},
        "environment": environment if environment is not None else capture_environment(),
        "runs": [],
    }
    if getattr(suite, "train", None) is not None:
        results["selection"]["train_max_pairs"] = train_max_pairs
    if plan is not None:
        results["train"] = plan.summary
    save_results(results, path)
    prepared = {spec.name: prepare_reranker(spec) for spec in rerankers}
    evaluated_on = {  # trained reranker -> names of the (selected) datasets it is evaluated on
        job.reranker: [d.name for d in datasets if job.model.datasets is None or d.name in job.model.datasets]
        for job in (plan.jobs if plan is not None else [])
    }
    total = len(datasets) * (len(rerankers) + 1) + sum(len(v) for v in evaluated_on.values())

    def record(run: dict[str, Any]) -> None:
        results["runs"].append(run)
        save_results(results, path)
        log(f"[{len(results['runs'])}/{total}] {run['reranker']} on {run['dataset']}: {_describe(run)}")

    with tempfile.TemporaryDirectory(prefix="harness-run-") as tmp:
        workdir = Path(tmp)
        if plan is not None:
            n_jobs = len(plan.jobs)

            def trained(job) -> None:
                results["train"]["models"].append(job.block)
                save_results(results, path)
                if job.spec is not None:
                    prepared[job.reranker] = prepare_reranker(job.spec)
                log(f"[train {len(results['train']['models'])}/{n_jobs}] {job.reranker}: {_train_summary(job.block)}")

            log(f"training {n_jobs} model{'s' * (n_jobs != 1)} on {plan.summary['n_pairs']} judged pairs of "
                f"{plan.summary['n_queries']} queries ({plan.summary['n_dev_queries']} dev queries) into {plan.root}")
            run_training(plan, workdir, timeout_s, progress, trained)
        for d_index, dspec in enumerate(datasets):
            base_protocol = {
                "first_stage": getattr(dspec, "first_stage", None),
                "top_k": getattr(dspec, "top_k", None),
                "max_queries": max_queries if max_queries is not None else getattr(dspec, "max_queries", None),
                "relevance_level": getattr(dspec, "relevance_level", None),
                "seed": suite.seed,
            }
            trained_here = [job for job in (plan.jobs if plan is not None else [])
                            if dspec.name in evaluated_on[job.reranker]]  # fmt: skip
            try:
                ds = load_dataset(dspec, max_queries=max_queries, seed=suite.seed)
                fingerprint = ds.fingerprint()
                protocol = dataset_protocol(ds, dspec, suite.seed, fingerprint)
            except Exception as exc:  # every run on this dataset is an error; other datasets go on
                message = f"dataset {dspec.name} could not be loaded: {type(exc).__name__}: {exc}"
                first_name = base_protocol["first_stage"] or FIRST_STAGE
                record(_error_run(dspec.name, first_name, FIRST_STAGE, base_protocol, message))
                for spec in rerankers:
                    protocol = {**base_protocol, **prepared[spec.name]["protocol"]}
                    record(_error_run(dspec.name, spec.name, spec.backend, protocol, message))
                for job in trained_here:
                    record(_error_run(dspec.name, job.reranker, job.backend, base_protocol, message, train=job.block))
                continue
            try:
                record(first_stage_run(ds, results["metrics"], protocol))
            except Exception as exc:
                message = f"first-stage evaluation failed: {type(exc).__name__}: {exc}"
                record(_error_run(ds.name, ds.first_stage, FIRST_STAGE, protocol, message))
            dataset_file = write_dataset_file(ds, fingerprint, workdir / f"dataset-{d_index}.json")
            for spec in rerankers:
                try:
                    run = reranker_run(ds, spec, prepared[spec.name], protocol, results["metrics"], measure,
                                       workdir, dataset_file, timeout_s, progress)  # fmt: skip
                except Exception as exc:  # a harness bug must not lose the other runs either
                    run = _error_run(ds.name, spec.name, spec.backend, protocol, f"{type(exc).__name__}: {exc}")
                record(run)
            for job in trained_here:
                if job.spec is None:
                    message = f"training failed: {job.block['error'].splitlines()[0]}"
                    run = _error_run(ds.name, job.reranker, job.backend, {**protocol, "model": job.model.base},
                                     message)  # fmt: skip
                else:
                    try:
                        run = reranker_run(ds, job.spec, prepared[job.reranker], protocol, results["metrics"],
                                           measure, workdir, dataset_file, timeout_s, progress)  # fmt: skip
                    except Exception as exc:
                        run = _error_run(ds.name, job.reranker, job.backend, protocol, f"{type(exc).__name__}: {exc}")
                run["train"] = job.block
                record(run)
    return results, path
