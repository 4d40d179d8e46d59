"""What a ``harness run`` will do, decided before anything runs: the selection and the list of steps.

A step is one (dataset, reranker, kind): ``first_stage`` (the dataset's first-stage ranking, evaluated in the
parent), ``reranker`` (a suite reranker measured in a worker) or ``trained`` (a model of the suite's ``train:``
section, measured like a reranker once trained). ``harness.run.executor`` walks the steps in order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

StepKind = Literal["first_stage", "reranker", "trained"]


@dataclass
class Step:
    kind: StepKind
    dataset: Any  # harness.suite.DatasetSpec
    reranker: str  # the run's reranker name (the first stage's name for first_stage)
    backend: str  # "first_stage" for the first stage
    spec: Any = None  # harness.suite.RerankerSpec (reranker steps)
    job: Any = None  # harness.train.plan.TrainJob (trained steps; its spec is set once trained)


def select_all(suite, only: Sequence[str] | None) -> tuple[list, list, list]:
    """(rerankers, datasets, (train model, backend) pairs) kept by ``--only``: naming any reranker (plain, train
    model ``minilm-full`` or trained ``minilm-full-mlx``) keeps only the named ones; naming datasets keeps only
    those datasets."""
    from ..suite import SuiteError

    rerankers, datasets, train = list(suite.rerankers), list(suite.datasets), suite.train
    if train is not None:  # only training suites need the training package
        from ..train.plan import selected_jobs, train_names
    else:
        selected_jobs, train_names = (lambda train, names: []), (lambda train: set())
    if not only:
        return rerankers, datasets, selected_jobs(train, None)
    r_names, d_names, t_names = {r.name for r in rerankers}, {d.name for d in datasets}, train_names(train)
    unknown = [n for n in only if n not in r_names | d_names | t_names]
    if unknown:
        trained = f"; trained: {', '.join(sorted(t_names))}" if t_names else ""
        raise SuiteError(
            f"--only {', '.join(unknown)}: not a reranker or dataset of suite {suite.name!r} "
            f"(rerankers: {', '.join(sorted(r_names)) or 'none'}; datasets: {', '.join(sorted(d_names))}{trained})"
        )
    jobs = selected_jobs(train, None)
    if any(n in r_names | t_names for n in only):
        rerankers = [r for r in rerankers if r.name in only]
        jobs = selected_jobs(train, set(only))
    if any(n in d_names for n in only):
        datasets = [d for d in datasets if d.name in only]
    return rerankers, datasets, jobs


def plan_steps(datasets: list, rerankers: list, train_jobs: list) -> list[Step]:
    """Per dataset: its first stage, every reranker, then every trained model evaluated on it."""
    steps = []
    for d in datasets:
        steps.append(Step("first_stage", d, d.first_stage, "first_stage"))
        steps += [Step("reranker", d, r.name, r.backend, spec=r) for r in rerankers]
        steps += [
            Step("trained", d, job.reranker, job.backend, job=job)
            for job in train_jobs
            if job.model.datasets is None or d.name in job.model.datasets
        ]
    return steps


def train_root(results_path: Path) -> Path:
    """Where a run's trained models go: ``results/<suite>-<ts>.json`` -> ``results/<suite>-<ts>.train/``."""
    results_path = Path(results_path)
    if results_path.suffix:
        return results_path.with_name(results_path.stem + ".train")
    return results_path.with_name(results_path.name + ".train")


def suite_fingerprint(suite, selection: dict[str, Any]) -> str:
    """sha256 of the suite's settings (every field, paths resolved) and of the command-line selection's
    protocol parts: ``--resume`` continues a results file only when this is equal."""
    settings = suite.model_dump(mode="json", exclude={"path", "raw"})
    protocol = {k: selection.get(k) for k in ("max_queries", "train_max_pairs")}
    return hashlib.sha256(json.dumps([settings, protocol], sort_keys=True).encode()).hexdigest()
