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

from .metrics import validate_metric

BACKENDS = ("mlx", "torch")
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
class Suite:
    name: str
    path: Path | None
    datasets: list[DatasetSpec]
    rerankers: list[RerankerSpec]
    baseline: str | None
    metrics: list[str]
    measure: MeasureSpec
    seed: int = 0
    train: dict | None = None  # reserved for a later issue: kept as an opaque mapping
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


# --- field tables: key -> (check, default or _REQUIRED) ---------------------------------------------------------------
_REQUIRED = object()
SUITE_FIELDS: dict[str, tuple[Check, Any]] = {
    "name": (_name, _REQUIRED),
    "datasets": (_entries, _REQUIRED),
    "rerankers": (_entries, _REQUIRED),
    "baseline": (_optional(_string), None),
    "metrics": (_metric_list, DEFAULT_METRICS),
    "measure": (_mapping, {}),
    "seed": (_int(0, "a non-negative integer"), 0),
    "train": (_optional(_mapping), None),
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
        train=top["train"],
        raw=data,
    )


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
