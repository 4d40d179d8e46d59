"""Benchmark suites: a YAML file naming datasets, rerankers, a baseline, metrics and measurement settings.

```yaml
name: trec-dl-2019
datasets:
  - {name: dl19, candidates: data/bm25_top100_dl19.json, qrels: data/qrels_dl19.txt, top_k: 100}
  - {name: scifact, ir_datasets: beir/scifact/test}
  - {name: x, run: run.trec, corpus: corpus.tsv, queries: queries.tsv, qrels: qrels.txt}
  - {name: y, beir: beir/scifact, split: test}
rerankers:
  - {name: minilm-mlx, backend: mlx, model: cross-encoder/ms-marco-MiniLM-L-6-v2, dtype: float16}
  - {name: minilm-torch, backend: torch, model: cross-encoder/ms-marco-MiniLM-L-6-v2}
baseline: minilm-torch
metrics: [ndcg@10, mrr@10, map@100, recall@100]
measure: {warmup_queries: 2, repeats: 1}
```

Paths are relative to the suite file's folder and must exist when the suite is loaded (ir_datasets ids are
only checked against ir_datasets' registry: their data is needed when the dataset is loaded, not here).
``model: local:<recipe>`` is left as is (harness.localmodels builds it later); a model starting with ``.`` or
``/`` is a path, resolved against the suite folder; anything else is a Hugging Face Hub id.

Relevance level rule (binary measures count grade >= level; nDCG always uses all grades): when
``relevance_level`` is not given it is 2 for TREC Deep Learning *passage* judgments, else 1. A dataset is TREC DL
passages when its ir_datasets id starts with ``msmarco-passage/trec-dl-`` or ``msmarco-passage-v2/trec-dl-``,
or, for file sources, when its name contains ``trec-dl``/``trec_dl``/``trecdl`` or ``dl19``..``dl23``
(also ``dl-19``, ``dl2019``, ...) and not ``doc`` (TREC DL document judgments use level 1, as Anserini does).

A suite may also have a ``train:`` section (documented in docs/suites.md): training data (judged pairs of candidate
lists + qrels, or JSONL records), a label threshold, a dev split by query, a recipe and models; each model is
trained by the MLX trainer and by its PyTorch counterpart, and the trained rerankers (``<model>-mlx``,
``<model>-torch``) are evaluated on the suite's datasets like the others. ``rerankers`` may then be omitted.

Every problem found is reported at once, one line each: ``<suite file>: <field path>: <what is wrong>``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..metrics import validate_metric

BACKENDS = ("mlx", "torch")
TRAIN_KINDS = ("cross_encoder", "llm")
FINE_TUNES = ("full", "lora")
TRAIN_LOSSES = ("bce", "listwise", "mse", "margin_mse")
TEACHER_LOSSES = ("mse", "margin_mse")  # need teacher scores, which judged pairs from qrels do not have
LR_SCHEDULERS = ("linear", "cosine", "constant")
TRAIN_SOURCES = ("candidates", "jsonl")
DTYPES = ("float32", "float16", "bfloat16")
SOURCES = {"candidates": "candidates", "run": "trec_run", "beir": "beir", "ir_datasets": "ir_datasets"}  # key -> kind
COMPUTED_FIRST_STAGES = ("bm25",)  # first stages the harness computes itself (beir, ir_datasets sources)
DEFAULT_METRICS = ["ndcg@10", "mrr@10", "map@100", "recall@100"]
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_TREC_DL_NAME = re.compile(r"trec[-_]?dl|(?<![a-z0-9])dl[-_]?(?:20)?(?:19|20|21|22|23)(?![0-9])", re.IGNORECASE)
_TREC_DL_PASSAGE_IDS = ("msmarco-passage/trec-dl-", "msmarco-passage-v2/trec-dl-")


class SuiteError(ValueError):
    """A suite that cannot be used; ``errors`` holds one line per problem."""

    def __init__(self, errors: list[str] | str):
        self.errors = [errors] if isinstance(errors, str) else list(errors)
        super().__init__("\n".join(self.errors))


@dataclass
class DatasetSpec:
    name: str
    source_kind: str  # "candidates" | "trec_run" | "beir" | "ir_datasets"
    candidates: Path | None = None
    qrels: Path | None = None
    run: Path | None = None
    corpus: Path | None = None
    queries: Path | None = None
    beir: Path | None = None
    ir_datasets: str | None = None
    first_stage: str = "bm25"
    top_k: int = 100
    max_queries: int | None = None
    relevance_level: int | None = None  # None: default_relevance_level(name, ir_datasets)
    add_judged_positives: bool = False
    split: str = "test"

    def resolved_relevance_level(self) -> int:
        return self.relevance_level if self.relevance_level is not None else default_relevance_level(
            self.name, self.ir_datasets
        )


@dataclass
class RerankerSpec:
    name: str
    backend: str  # "mlx" | "torch"
    model: str  # Hub id, absolute path, or local:<recipe>
    dtype: str | None = None
    batch_size: int = 32
    max_length: int | None = None
    device: str = "auto"
    instruction: str | None = None
    options: dict = field(default_factory=dict)


@dataclass
class MeasureSpec:
    warmup_queries: int = 2
    repeats: int = 1


@dataclass
class TrainSource:
    """One training source: judged pairs of a candidate list (``candidates`` + ``qrels``) or a JSONL file."""

    kind: str  # "candidates" | "jsonl"
    candidates: Path | None = None
    qrels: Path | None = None
    jsonl: Path | None = None

    def describe(self) -> str:
        return f"{self.candidates} + {self.qrels}" if self.kind == "candidates" else str(self.jsonl)


@dataclass
class TrainRecipe:
    """The recipe both backends train with (names as in the suite; ``epochs`` is the trainers' num_epochs)."""

    loss: str = "bce"
    epochs: int = 1
    max_steps: int | None = None
    learning_rate: float = 2e-5
    weight_decay: float = 0.01
    batch_size: int = 16
    gradient_accumulation_steps: int = 1
    warmup_ratio: float = 0.1
    lr_scheduler: str = "linear"
    max_grad_norm: float | None = 1.0
    max_length: int = 256
    eval_steps: int | None = None  # None: evaluate on the dev split at the end of each epoch (and after the last step)
    eval_batch_size: int = 32
    group_size: int = 8
    temperature: float = 1.0
    pos_weight: float | None = None
    seed: int = 0
    max_pairs: int | None = None  # training pairs sampled deterministically (seed) from the train split
    dev_max_docs: int | None = None  # judged documents kept per dev query (stratified by label, seeded)


@dataclass
class TrainModelSpec:
    name: str
    base: str  # Hub id, absolute path or local:<recipe>
    kind: str = "cross_encoder"  # "cross_encoder" | "llm"
    fine_tune: str = "full"
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    backends: list[str] = field(default_factory=lambda: list(BACKENDS))
    recipe: TrainRecipe = field(default_factory=TrainRecipe)
    datasets: list[str] | None = None  # suite datasets to evaluate on (None: all)
    batch_size: int = 32  # evaluation batch size
    instruction: str | None = None  # LLM rerankers: the prompt's instruction (None: the template's default)

    def reranker_name(self, backend: str) -> str:
        return f"{self.name}-{backend}"


@dataclass
class DevSplit:
    fraction: float = 0.2
    seed: int = 0


@dataclass
class TrainSpec:
    sources: list[TrainSource]
    models: list[TrainModelSpec]
    label_threshold: int = 1
    dev: DevSplit = field(default_factory=DevSplit)
    recipe: TrainRecipe = field(default_factory=TrainRecipe)

    def reranker_names(self) -> list[str]:
        return [m.reranker_name(b) for m in self.models for b in m.backends]


@dataclass
class Suite:
    name: str
    path: Path | None
    datasets: list[DatasetSpec]
    rerankers: list[RerankerSpec]
    baseline: str | None
    metrics: list[str]
    measure: MeasureSpec
    seed: int = 0
    train: TrainSpec | None = None  # the train: section (models trained, then evaluated as rerankers)
    raw: dict = field(default_factory=dict)

    def dataset(self, name: str) -> DatasetSpec:
        return next(d for d in self.datasets if d.name == name)

    def reranker(self, name: str) -> RerankerSpec:
        return next(r for r in self.rerankers if r.name == name)


def default_relevance_level(name: str, ir_datasets_id: str | None = None) -> int:
    """2 for TREC DL passage judgments, else 1 (see the module docstring for the rule)."""
    if ir_datasets_id:
        return 2 if ir_datasets_id.startswith(_TREC_DL_PASSAGE_IDS) else 1
    return 2 if _TREC_DL_NAME.search(name) and "doc" not in name.lower() else 1


# --- value checkers: (value, base_dir) -> converted value, or raise _Bad(message) ---------------------------------
class _Bad(Exception):
    pass


Check = Callable[[Any, Path], Any]


def _type_name(v: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
             dict: "a mapping"}
    return names.get(type(v), type(v).__name__)


def _got(v: Any) -> str:
    return f"got {v!r}" if isinstance(v, (int, float, str, bool)) or v is None else f"got {_type_name(v)}"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _int(minimum: int, what: str) -> Check:
    def check(v: Any, _: Path) -> int:
        if not _is_int(v) or v < minimum:
            raise _Bad(f"must be {what}, {_got(v)}")
        return v

    return check


def _optional(check: Check) -> Check:
    return lambda v, base: None if v is None else check(v, base)


def _string(v: Any, _: Path) -> str:
    if not isinstance(v, str) or not v.strip():
        raise _Bad(f"must be a non-empty string, {_got(v)}")
    return v


def _name(v: Any, base: Path) -> str:
    if not _NAME_RE.match(_string(v, base)):
        raise _Bad(f"must be a name of letters, digits and . _ + - (starting with a letter or digit), {_got(v)}")
    return v


def _choice(*values: str) -> Check:
    def check(v: Any, _: Path) -> str:
        if v not in values:
            raise _Bad(f"must be one of {', '.join(values)}, {_got(v)}")
        return v

    return check


def _bool(v: Any, _: Path) -> bool:
    if not isinstance(v, bool):
        raise _Bad(f"must be true or false, {_got(v)}")
    return v


def _mapping(v: Any, _: Path) -> dict:
    if not isinstance(v, dict):
        raise _Bad(f"must be a mapping, {_got(v)}")
    return v


def _path(kind: str) -> Check:
    def check(v: Any, base: Path) -> Path:
        p = (base / Path(_string(v, base)).expanduser()).resolve()
        if not (p.is_dir() if kind == "dir" else p.is_file()):
            raise _Bad(f"no such {'folder' if kind == 'dir' else 'file'}: {p}")
        return p

    return check


def _model(v: Any, base: Path) -> str:
    v = _string(v, base)
    if v.startswith((".", "/")):
        p = (base / v).resolve()
        if not p.exists():
            raise _Bad(f"no such model path: {p}")
        return str(p)
    return v


def _metric_list(v: Any, _: Path) -> list:
    if not isinstance(v, list) or not v:
        raise _Bad(f"must be a non-empty list of metric names, {_got(v)}")
    return v


def _entries(v: Any, _: Path) -> list:
    if not isinstance(v, list) or not v:
        raise _Bad(f"must be a non-empty list, {_got(v)}")
    return v


def _entries_or_empty(v: Any, _: Path) -> list:
    if not isinstance(v, list):
        raise _Bad(f"must be a non-empty list, {_got(v)}")
    return v


def _float(minimum: float, maximum: float | None, what: str, open_min: bool = False, open_max: bool = False) -> Check:
    """A number in a range; a string that reads as a number is accepted too (YAML 1.1, which PyYAML follows,
    reads ``2e-5`` without a dot as a string)."""

    def check(v: Any, _: Path) -> float:
        value = v
        if isinstance(v, str):
            try:
                value = float(v)
            except ValueError:
                raise _Bad(f"must be {what}, {_got(v)}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise _Bad(f"must be {what}, {_got(v)}")
        low_bad = value <= minimum if open_min else value < minimum
        high_bad = maximum is not None and (value >= maximum if open_max else value > maximum)
        if low_bad or high_bad:
            raise _Bad(f"must be {what}, {_got(v)}")
        return float(value)

    return check


def _choices_list(*values: str) -> Check:
    def check(v: Any, _: Path) -> list:
        if not isinstance(v, list) or not v or any(x not in values for x in v) or len(set(v)) != len(v):
            raise _Bad(f"must be a non-empty list of distinct values among {', '.join(values)}, {_got(v)}")
        return list(v)

    return check


def _name_list(v: Any, base: Path) -> list:
    if not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v):
        raise _Bad(f"must be a non-empty list of dataset names, {_got(v)}")
    return list(v)


# --- field tables: key -> (check, default or _REQUIRED) ---------------------------------------------------------------
_REQUIRED = object()
SUITE_FIELDS: dict[str, tuple[Check, Any]] = {
    "name": (_name, _REQUIRED),
    "datasets": (_entries, _REQUIRED),
    "rerankers": (_entries_or_empty, None),  # required (non-empty) unless the suite has a train section
    "baseline": (_optional(_string), None),
    "metrics": (_metric_list, DEFAULT_METRICS),
    "measure": (_mapping, {}),
    "seed": (_int(0, "a non-negative integer"), 0),
    "train": (_optional(_mapping), None),
}
TRAIN_FIELDS: dict[str, tuple[Check, Any]] = {
    "data": (_entries, _REQUIRED),
    "label_threshold": (_int(1, "a positive integer"), 1),
    "dev": (_mapping, {}),
    "recipe": (_mapping, {}),
    "models": (_entries, _REQUIRED),
}
TRAIN_SOURCE_FIELDS: dict[str, tuple[Check, Any]] = {
    "candidates": (_optional(_path("file")), None),
    "qrels": (_optional(_path("file")), None),
    "jsonl": (_optional(_path("file")), None),
}
DEV_FIELDS: dict[str, tuple[Check, Any]] = {
    "fraction": (_float(0.0, 1.0, "a number in [0, 1)", open_max=True), 0.2),
    "seed": (_int(0, "a non-negative integer"), 0),
}
_OPTIONAL_POSITIVE = _optional(_int(1, "a positive integer or null"))
RECIPE_FIELDS: dict[str, tuple[Check, Any]] = {
    "loss": (_choice(*TRAIN_LOSSES), "bce"),
    "epochs": (_int(1, "a positive integer"), 1),
    "max_steps": (_OPTIONAL_POSITIVE, None),
    "learning_rate": (_float(0.0, None, "a positive number", open_min=True), 2e-5),
    "weight_decay": (_float(0.0, None, "a non-negative number"), 0.01),
    "batch_size": (_int(1, "a positive integer"), 16),
    "gradient_accumulation_steps": (_int(1, "a positive integer"), 1),
    "warmup_ratio": (_float(0.0, 1.0, "a number in [0, 1]"), 0.1),
    "lr_scheduler": (_choice(*LR_SCHEDULERS), "linear"),
    "max_grad_norm": (_optional(_float(0.0, None, "a positive number or null", open_min=True)), 1.0),
    "max_length": (_int(2, "an integer >= 2"), 256),
    "eval_steps": (_OPTIONAL_POSITIVE, None),
    "eval_batch_size": (_int(1, "a positive integer"), 32),
    "group_size": (_int(2, "an integer >= 2"), 8),
    "temperature": (_float(0.0, None, "a positive number", open_min=True), 1.0),
    "pos_weight": (_optional(_float(0.0, None, "a positive number or null", open_min=True)), None),
    "seed": (_int(0, "a non-negative integer"), 0),
    "max_pairs": (_OPTIONAL_POSITIVE, None),
    "dev_max_docs": (_OPTIONAL_POSITIVE, None),
}
TRAIN_MODEL_FIELDS: dict[str, tuple[Check, Any]] = {
    "name": (_name, _REQUIRED),
    "base": (_model, _REQUIRED),
    "kind": (_choice(*TRAIN_KINDS), "cross_encoder"),
    "fine_tune": (_optional(_choice(*FINE_TUNES)), None),  # default: full for cross_encoder, lora for llm
    "lora_rank": (_optional(_int(1, "a positive integer")), None),
    "lora_alpha": (_optional(_float(0.0, None, "a positive number", open_min=True)), None),
    "lora_dropout": (_optional(_float(0.0, 1.0, "a number in [0, 1)", open_max=True)), None),
    "backends": (_choices_list(*BACKENDS), list(BACKENDS)),
    "recipe": (_mapping, {}),
    "datasets": (_optional(_name_list), None),
    "batch_size": (_int(1, "a positive integer"), 32),
    "instruction": (_optional(_string), None),
}
DATASET_FIELDS: dict[str, tuple[Check, Any]] = {
    "name": (_name, _REQUIRED),
    "candidates": (_optional(_path("file")), None),
    "run": (_optional(_path("file")), None),
    "beir": (_optional(_path("dir")), None),
    "ir_datasets": (_optional(_string), None),
    "qrels": (_optional(_path("file")), None),
    "corpus": (_optional(_path("file")), None),
    "queries": (_optional(_path("file")), None),
    "first_stage": (_name, "bm25"),
    "top_k": (_int(1, "a positive integer"), 100),
    "max_queries": (_optional(_int(1, "a positive integer or null")), None),
    "relevance_level": (_optional(_int(1, "a positive integer or null")), None),
    "add_judged_positives": (_bool, False),
    "split": (_name, "test"),
}
RERANKER_FIELDS: dict[str, tuple[Check, Any]] = {
    "name": (_name, _REQUIRED),
    "backend": (_choice(*BACKENDS), _REQUIRED),
    "model": (_model, _REQUIRED),
    "dtype": (_optional(_choice(*DTYPES)), None),
    "batch_size": (_int(1, "a positive integer"), 32),
    "max_length": (_optional(_int(1, "a positive integer or null")), None),
    "device": (_string, "auto"),
    "instruction": (_optional(_string), None),
    "options": (_mapping, {}),
}
MEASURE_FIELDS: dict[str, tuple[Check, Any]] = {
    "warmup_queries": (_int(0, "a non-negative integer"), 2),
    "repeats": (_int(1, "a positive integer"), 1),
}
# files each source kind uses besides its source key (all required)
SOURCE_FILES = {"candidates": ("qrels",), "trec_run": ("corpus", "queries", "qrels"), "beir": (), "ir_datasets": ()}
BEIR_FILES = ("corpus.jsonl", "queries.jsonl", "qrels/{split}.tsv")


class _Collector:
    def __init__(self, source: str, base_dir: Path):
        self.source, self.base_dir, self.errors = source, base_dir, []

    def add(self, where: str, message: str) -> None:
        self.errors.append(f"{self.source}: {where}: {message}" if where else f"{self.source}: {message}")

    def section(self, data: Any, fields: dict[str, tuple[Check, Any]], where: str) -> dict | None:
        """Checked values of a mapping (defaults filled in); None when ``data`` is not a mapping."""
        if not isinstance(data, dict):
            self.add(where, f"must be a mapping, {_got(data)}")
            return None
        out: dict[str, Any] = {}
        for key in data:
            if key not in fields:
                close = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]!r}?)" if close else f"; valid keys: {', '.join(fields)}"
                self.add(f"{where}.{key}" if where else str(key), f"unknown key{hint}")
        for key, (check, default) in fields.items():
            path = f"{where}.{key}" if where else key
            if key not in data:
                if default is _REQUIRED:
                    self.add(path, "missing (required)")
                else:
                    out[key] = default.copy() if isinstance(default, (dict, list)) else default
                continue
            try:
                out[key] = check(data[key], self.base_dir)
            except _Bad as exc:
                self.add(path, str(exc))
        return out


def suite_from_dict(data: dict, base_dir: Path, source: str = "<dict>") -> Suite:
    """Validate a parsed suite mapping (paths relative to ``base_dir``); raise SuiteError listing every problem."""
    c = _Collector(source, Path(base_dir))
    top = c.section(data, SUITE_FIELDS, "")
    if top is None:
        raise SuiteError(c.errors)

    datasets = [_dataset(c, entry, i) for i, entry in enumerate(top.get("datasets") or [])]
    train = _train(c, top["train"], top.get("datasets") or []) if top.get("train") is not None else None
    if top.get("train") is None and "rerankers" not in data:
        c.add("rerankers", "missing (required unless the suite has a train section)")
    elif top.get("train") is None and top.get("rerankers") == []:
        c.add("rerankers", "must be a non-empty list (or give a train section), got an empty list")
    rerankers = []
    for i, entry in enumerate(top.get("rerankers") or []):
        n_errors = len(c.errors)
        r = c.section(entry, RERANKER_FIELDS, f"rerankers[{i}]")
        rerankers.append(RerankerSpec(**r) if len(c.errors) == n_errors else None)
    measure = c.section(top["measure"], MEASURE_FIELDS, "measure") if "measure" in top else None

    metrics = []
    for i, m in enumerate(top.get("metrics") or []):
        try:
            canon = validate_metric(m)
        except ValueError as exc:
            c.add(f"metrics[{i}]", str(exc))
            continue
        if canon in metrics:
            c.add(f"metrics[{i}]", f"duplicate metric {canon!r}")
        metrics.append(canon)

    def raw_names(kind: str) -> list:  # names as written, so that entries with other errors still count
        entries = top.get(kind) or []
        return [e.get("name") if isinstance(e, dict) and isinstance(e.get("name"), str) else None for e in entries]

    for kind in ("datasets", "rerankers"):
        seen: dict[str, int] = {}
        for i, name in enumerate(raw_names(kind)):
            if name is not None and name in seen:
                c.add(f"{kind}[{i}].name", f"duplicate name {name!r} (also {kind}[{seen[name]}])")
            seen.setdefault(name, i)
    stages = {d.first_stage for d in datasets if d is not None}
    for i, r in enumerate(rerankers):
        if r is not None and r.name in stages:
            c.add(f"rerankers[{i}].name", f"{r.name!r} is also a dataset's first_stage (a row of its own in reports)")
    names = [n for n in raw_names("rerankers") if n is not None]
    if train is not None:
        for i, m in enumerate(train.models):
            for backend in m.backends if m is not None else ():
                trained = m.reranker_name(backend)
                if trained in names:
                    c.add(f"train.models[{i}].name", f"trained reranker {trained!r} is also a name in rerankers")
                elif trained in stages:
                    c.add(f"train.models[{i}].name", f"trained reranker {trained!r} is also a dataset's first_stage")
        names += [n for m in train.models if m is not None for n in (m.reranker_name(b) for b in m.backends)]
    if top.get("baseline") is not None and top["baseline"] not in names:
        c.add("baseline", f"{top['baseline']!r} is not one of the rerankers ({', '.join(names)})")

    if c.errors:
        raise SuiteError(c.errors)
    return Suite(
        name=top["name"],
        path=None,
        datasets=datasets,
        rerankers=rerankers,
        baseline=top["baseline"],
        metrics=metrics,
        measure=MeasureSpec(**measure),
        seed=top["seed"],
        train=train,
        raw=data,
    )


def _recipe(c: _Collector, data: Any, where: str, base: TrainRecipe | None = None) -> TrainRecipe | None:
    """The recipe at ``where`` (its given keys over ``base``, or over the defaults)."""
    n_errors = len(c.errors)
    checked = c.section(data, RECIPE_FIELDS, where)
    if checked is None or len(c.errors) > n_errors:
        return None
    given = {k: checked[k] for k in data}
    if base is None:
        return TrainRecipe(**checked)
    return TrainRecipe(**{**base.__dict__, **given})


def _train(c: _Collector, data: dict, dataset_entries: list) -> TrainSpec | None:
    """The ``train:`` section (see docs/suites.md)."""
    n_errors = len(c.errors)
    top = c.section(data, TRAIN_FIELDS, "train")
    if top is None:
        return None
    sources = []
    for i, entry in enumerate(top.get("data") or []):
        where = f"train.data[{i}]"
        before = len(c.errors)
        d = c.section(entry, TRAIN_SOURCE_FIELDS, where)
        if d is None:
            continue
        given = [k for k in TRAIN_SOURCES if entry.get(k) is not None]
        if len(given) != 1:
            c.add(where, "needs exactly one source: candidates (with qrels) or jsonl"
                  + (f" (got {', '.join(given)})" if given else ""))  # fmt: skip
            continue
        if given[0] == "candidates" and entry.get("qrels") is None:
            c.add(f"{where}.qrels", "missing (required with candidates: the judgments give the labels)")
        if given[0] == "jsonl" and entry.get("qrels") is not None:
            c.add(f"{where}.qrels", "not used with jsonl (its records carry their labels)")
        if len(c.errors) == before:
            sources.append(TrainSource(kind=given[0], **d))
    dev = c.section(top["dev"], DEV_FIELDS, "train.dev") if "dev" in top else None
    recipe = _recipe(c, top["recipe"], "train.recipe") if "recipe" in top else None
    dataset_names = [e.get("name") for e in dataset_entries if isinstance(e, dict)]
    models: list[TrainModelSpec | None] = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(top.get("models") or []):
        models.append(_train_model(c, entry, f"train.models[{i}]", recipe or TrainRecipe(), dataset_names))
        name = entry.get("name") if isinstance(entry, dict) else None
        if isinstance(name, str):
            if name in seen:
                c.add(f"train.models[{i}].name", f"duplicate name {name!r} (also train.models[{seen[name]}])")
            seen.setdefault(name, i)
    has_judged = any(s.kind == "candidates" for s in sources)
    for i, m in enumerate(models):
        if m is not None and m.recipe.loss in TEACHER_LOSSES and has_judged:
            where = f"train.models[{i}].recipe.loss" if "loss" in (top["models"][i].get("recipe") or {}) \
                else "train.recipe.loss"  # fmt: skip
            c.add(where, f"loss {m.recipe.loss!r} needs teacher scores, which judged pairs from candidates + qrels "
                  "do not have; use bce or listwise")  # fmt: skip
    if len(c.errors) > n_errors or dev is None or recipe is None:
        return None
    return TrainSpec(sources=sources, models=models, label_threshold=top["label_threshold"],
                     dev=DevSplit(**dev), recipe=recipe)  # fmt: skip


def _train_model(c: _Collector, entry: Any, where: str, base_recipe: TrainRecipe,
                 dataset_names: list) -> TrainModelSpec | None:  # fmt: skip
    n_errors = len(c.errors)
    m = c.section(entry, TRAIN_MODEL_FIELDS, where)
    if m is None:
        return None
    recipe = _recipe(c, m["recipe"], f"{where}.recipe", base_recipe)
    fine_tune = m["fine_tune"] or ("lora" if m["kind"] == "llm" else "full")
    if fine_tune != "lora":
        for key in ("lora_rank", "lora_alpha", "lora_dropout"):
            if m.get(key) is not None:
                c.add(f"{where}.{key}", f"only used with fine_tune: lora (this model is fine_tune: {fine_tune})")
    if m.get("instruction") is not None and m["kind"] != "llm":
        c.add(f"{where}.instruction", "only used with kind: llm (a cross-encoder has no prompt)")
    for j, name in enumerate(m.get("datasets") or []):
        if name not in dataset_names:
            c.add(f"{where}.datasets[{j}]", f"{name!r} is not one of the datasets ({', '.join(map(str, dataset_names))})")
    if len(c.errors) > n_errors or recipe is None:
        return None
    rank = m["lora_rank"] or 8
    return TrainModelSpec(
        name=m["name"], base=m["base"], kind=m["kind"], fine_tune=fine_tune, lora_rank=rank,
        lora_alpha=m["lora_alpha"] if m["lora_alpha"] is not None else 2.0 * rank,
        lora_dropout=m["lora_dropout"] or 0.0, backends=m["backends"], recipe=recipe, datasets=m["datasets"],
        batch_size=m["batch_size"], instruction=m["instruction"],
    )  # fmt: skip


def _dataset(c: _Collector, entry: Any, i: int) -> DatasetSpec | None:
    where = f"datasets[{i}]"
    n_errors = len(c.errors)
    d = c.section(entry, DATASET_FIELDS, where)
    if d is None:
        return None
    given = [k for k in SOURCES if entry.get(k) is not None]
    if len(given) != 1:
        c.add(where, "needs exactly one source: candidates, run, beir or ir_datasets"
              + (f" (got {', '.join(given)})" if given else ""))
        return None
    kind = SOURCES[given[0]]
    for key in ("qrels", "corpus", "queries"):
        if key in SOURCE_FILES[kind] and entry.get(key) is None:
            c.add(f"{where}.{key}", f"missing (required with {given[0]})")
        elif key not in SOURCE_FILES[kind] and entry.get(key) is not None:
            c.add(f"{where}.{key}", f"not used with {given[0]} (which provides its own)")
    if "split" in entry and kind != "beir":
        c.add(f"{where}.split", f"only used with a beir folder (not {given[0]})")
    if kind in ("beir", "ir_datasets") and d.get("first_stage") not in (None, *COMPUTED_FIRST_STAGES):
        c.add(f"{where}.first_stage", f"must be one of {', '.join(COMPUTED_FIRST_STAGES)} with {given[0]} "
              f"(the harness computes it), got {d['first_stage']!r}")
    if kind == "candidates" and d.get("add_judged_positives"):
        c.add(f"{where}.add_judged_positives", "needs the documents' text: use run+corpus, beir or ir_datasets")
    if kind == "beir" and d.get("beir") is not None and d.get("split") is not None:
        for rel in BEIR_FILES:
            if not (d["beir"] / rel.format(split=d["split"])).is_file():
                c.add(f"{where}.beir", f"BEIR folder {d['beir']} has no {rel.format(split=d['split'])}")
    if kind == "ir_datasets" and d.get("ir_datasets") is not None:
        problem = _check_ir_datasets_id(d["ir_datasets"])
        if problem:
            c.add(f"{where}.ir_datasets", problem)
    if len(c.errors) > n_errors:
        return None
    if d["relevance_level"] is None:
        d["relevance_level"] = default_relevance_level(d["name"], d["ir_datasets"])
    return DatasetSpec(source_kind=kind, **d)


def _check_ir_datasets_id(dataset_id: str) -> str | None:
    """A message when ``dataset_id`` is not in ir_datasets' registry (needs no data, only the registry)."""
    try:
        import ir_datasets
    except ImportError:
        return "the ir_datasets package is not installed"
    try:
        ir_datasets.registry[dataset_id]
    except KeyError:
        close = difflib.get_close_matches(dataset_id, list(ir_datasets.registry), n=1, cutoff=0.6)
        return f"unknown ir_datasets id {dataset_id!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
    return None


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice in one mapping (PyYAML silently keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_suite(path: str | Path) -> Suite:
    """Read and validate a suite YAML file; raise SuiteError naming the file, field path and problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SuiteError(f"{path}: cannot read suite file ({exc.strerror or exc})") from exc
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SuiteError(f"{path}: invalid YAML: {where}{problem}") from exc
    if data is None:
        raise SuiteError(f"{path}: the suite file is empty")
    suite = suite_from_dict(data, path.parent, source=str(path))
    suite.path = path
    return suite
