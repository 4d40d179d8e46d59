"""The suite's typed records (pydantic): what a suite file may say, with its defaults and its rules.

Field checks keep the suite's wording (``harness.suite.checks``); rules between fields (exactly one source, files
a source needs or refuses, names that must be unique) are ``cross_checks`` on the raw mapping, so one pass reports
every problem. Paths are resolved against the suite's folder (validation context ``base_dir``). Records built in
Python (``RerankerSpec(name=..., ...)``) are typed but not cross-checked; files go through ``harness.suite.load``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, model_validator

from mlx_cross_encoder.training.settings import FAMILY_FINE_TUNE, FINE_TUNE_TYPES

from ..backends.registry import BACKENDS, trainable_backends
from ..compare.gate import Gate  # the gate: section (thresholds of harness compare), typed there
from ..metrics import validate_metric
from ..records import Checked, Invalid, Record, got
from ..scenarios import DEFAULT_SCENARIOS, SCENARIOS
from ..sources.registry import COMPUTED_FIRST_STAGES, FILE_KEYS, SOURCE_KEYS, SOURCES
from . import checks as C

#: model families a suite trains: cross_encoder, llm, and bi_encoder (InfoNCE, harness.train.bi_encoder_worker)
TRAIN_KINDS = (*FAMILY_FINE_TUNE, "bi_encoder")
FINE_TUNES = FINE_TUNE_TYPES
#: float32 = full float32; tf32 = float32 with TF32 matmuls where the hardware has TF32 units (harness.backends.TF32)
DTYPES = ("float32", "tf32", "float16", "bfloat16")
DEFAULT_METRICS = ["ndcg@10", "mrr@10", "map@100", "recall@100"]
BEIR_FILES = ("corpus.jsonl", "queries.jsonl", "qrels/{split}.tsv")
_TREC_DL_NAME = re.compile(r"trec[-_]?dl|(?<![a-z0-9])dl[-_]?(?:20)?(?:19|20|21|22|23)(?![0-9])", re.IGNORECASE)
_TREC_DL_PASSAGE_IDS = ("msmarco-passage/trec-dl-", "msmarco-passage-v2/trec-dl-")


def default_relevance_level(name: str, ir_datasets_id: str | None = None) -> int:
    """2 for TREC DL passage judgments, else 1 (see harness.suite's docstring for the rule)."""
    if ir_datasets_id:
        return 2 if ir_datasets_id.startswith(_TREC_DL_PASSAGE_IDS) else 1
    return 2 if _TREC_DL_NAME.search(name) and "doc" not in name.lower() else 1


def _scenario(v: Any, _: Path) -> str:
    if v not in SCENARIOS:
        raise Invalid(f"must be one of {', '.join(SCENARIOS)}, {got(v)}")
    return v


def _backend(v: Any, _: Path) -> str:  # read at validation time: tests register backends of their own
    if v not in BACKENDS:
        raise Invalid(f"must be one of {', '.join(BACKENDS)}, {got(v)}")
    return v


# --- field types: the JSON Schema comes from the type, the wording from the check --------------------------------
Name = Annotated[str, Field(pattern=C.NAME_RE.pattern), Checked(C.name)]
Text = Annotated[str, Field(min_length=1), Checked(C.string)]
OptText = Annotated[str | None, Checked(C.optional(C.string))]
PositiveInt = Annotated[int, Field(ge=1), Checked(C.integer(1, "a positive integer"))]
OptPositiveInt = Annotated[int | None, Field(ge=1), Checked(C.optional(C.integer(1, "a positive integer or null")))]
NonNegInt = Annotated[int, Field(ge=0), Checked(C.integer(0, "a non-negative integer"))]
Bool = Annotated[bool, Checked(C.boolean)]
File = Annotated[Path | None, Checked(C.optional(C.path("file")))]
Folder = Annotated[Path | None, Checked(C.optional(C.path("dir")))]
ModelRef = Annotated[str, Field(min_length=1), Checked(C.model_ref)]
Mapping = Annotated[dict[str, Any], Checked(C.mapping)]
Backend = Annotated[str, Field(json_schema_extra={"enum": list(BACKENDS)}), Checked(_backend)]
Dtype = Annotated[Literal[DTYPES] | None, Checked(C.optional(C.choice(*DTYPES)))]  # type: ignore[valid-type]


class DatasetSpec(Record):
    """One dataset: exactly one source (``harness.sources.registry``) and how its candidates are cut."""

    derived_fields = ("source_kind",)
    name: Name
    source_kind: str = ""  # derived from the source key given: candidates | trec_run | beir | ir_datasets | judged_pool
    candidates: File = None
    run: File = None
    beir: Folder = None
    ir_datasets: OptText = None
    judged_pool: File = None  # TREC qrels: each query's judged documents, in corpus order, are its candidates
    qrels: File = None
    corpus: File = None
    queries: File = None
    first_stage: Name = "bm25"
    top_k: PositiveInt = 100
    max_queries: OptPositiveInt = None
    relevance_level: OptPositiveInt = None  # None: default_relevance_level(name, ir_datasets)
    add_judged_positives: Bool = False
    split: Name = "test"

    @model_validator(mode="after")
    def _derive(self) -> DatasetSpec:
        if not self.source_kind:
            given = [s.kind for key, s in SOURCE_KEYS.items() if getattr(self, key) is not None]
            self.source_kind = given[0] if len(given) == 1 else ""
        fixed = SOURCES[self.source_kind].first_stage if self.source_kind in SOURCES else None
        if fixed and "first_stage" not in self.model_fields_set:
            self.first_stage = fixed  # the source's own first stage (judged_pool: judged-pool)
        if self.relevance_level is None and self.source_kind:
            self.relevance_level = default_relevance_level(self.name, self.ir_datasets)
        return self

    def resolved_relevance_level(self) -> int:
        return (
            self.relevance_level
            if self.relevance_level is not None
            else default_relevance_level(self.name, self.ir_datasets)
        )

    @classmethod
    def cross_checks(cls, data: dict, info: ValidationInfo) -> Iterable[tuple[tuple, str]]:
        given = [k for k in SOURCE_KEYS if data.get(k) is not None]
        if len(given) != 1:
            keys = list(SOURCE_KEYS)
            yield (
                (),
                f"needs exactly one source: {', '.join(keys[:-1])} or {keys[-1]}"
                + (f" (got {', '.join(given)})" if given else ""),
            )
            return
        source = SOURCE_KEYS[given[0]]
        for key in FILE_KEYS:
            if key in source.files and data.get(key) is None:
                yield (key,), f"missing (required with {source.key})"
            elif key not in source.files and data.get(key) is not None:
                yield (key,), f"not used with {source.key} (which provides its own)"
        if "split" in data and source.kind != "beir":
            yield ("split",), f"only used with a beir folder (not {source.key})"
        first_stage = data.get("first_stage")
        if source.computes_first_stage and first_stage not in (None, *COMPUTED_FIRST_STAGES):
            yield (
                ("first_stage",),
                (
                    f"must be one of {', '.join(COMPUTED_FIRST_STAGES)} with {source.key} "
                    f"(the harness computes it), got {first_stage!r}"
                ),
            )
        if source.first_stage and first_stage not in (None, source.first_stage):
            yield (
                ("first_stage",),
                f"must be {source.first_stage} with {source.key} (the source gives the order), got {first_stage!r}",
            )
        if source.kind == "candidates" and data.get("add_judged_positives") is True:
            yield ("add_judged_positives",), "needs the documents' text: use run+corpus, beir or ir_datasets"
        if source.kind == "beir" and isinstance(data.get("beir"), str) and isinstance(data.get("split", "test"), str):
            folder = (Path((info.context or {}).get("base_dir") or ".") / data["beir"]).resolve()
            for rel in BEIR_FILES if folder.is_dir() else ():
                if not (folder / rel.format(split=data.get("split", "test"))).is_file():
                    yield ("beir",), f"BEIR folder {folder} has no {rel.format(split=data.get('split', 'test'))}"
        if source.kind == "ir_datasets" and isinstance(data.get("ir_datasets"), str) and data["ir_datasets"].strip():
            problem = C.ir_datasets_id_problem(data["ir_datasets"])
            if problem:
                yield ("ir_datasets",), problem


class RerankerSpec(Record):
    """One reranker: a backend (``harness.backends.registry``), a model and its settings."""

    name: Name
    backend: Backend
    model: ModelRef  # Hub id, absolute path, or local:<name>
    dtype: Dtype = None
    batch_size: PositiveInt = 32
    max_length: OptPositiveInt = None
    device: Text = "auto"
    instruction: OptText = None
    options: Mapping = Field(default_factory=dict)

    @classmethod
    def cross_checks(cls, data: dict, info: ValidationInfo) -> Iterable[tuple[tuple, str]]:
        info_ = BACKENDS.get(data.get("backend"))
        options = data.get("options")
        if info_ is not None and isinstance(options, dict) and info_.options:
            for key in sorted(set(options) - info_.options, key=str):
                close = difflib.get_close_matches(str(key), sorted(info_.options), n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]!r}?)" if close else f"; known: {', '.join(sorted(info_.options))}"
                yield ("options", key), f"unknown option for the {info_.name} backend{hint}"


PositiveNumber = Annotated[float, Field(gt=0), Checked(C.number(0, None, "a positive number", open_min=True))]


NonNegNumber = Annotated[float, Field(ge=0), Checked(C.number(0, None, "a non-negative number"))]
Scenario = Annotated[str, Field(json_schema_extra={"enum": list(SCENARIOS)}), Checked(_scenario)]


class MeasureSpec(Record):
    """How speed is measured and when a run's speed figures are VALID (``harness.run.verdict``)."""

    scenarios: Annotated[list[Scenario], Checked(C.nonempty_list())] = Field(
        default_factory=lambda: list(DEFAULT_SCENARIOS)
    )  # harness.scenarios, measured in this order; the first one's first pass is evaluated
    scenario_options: Annotated[dict[str, dict[str, Any]], Checked(C.mapping)] = Field(default_factory=dict)
    warmup_queries: NonNegInt = 2
    repeats: PositiveInt = 1
    min_time_s: NonNegNumber = 0.0  # more timed passes until their total reaches this (at most max_repeats)
    max_repeats: PositiveInt = 100  # the bound on passes that min_time_s may add
    min_samples: PositiveInt = 5  # fewer latency samples (queries x repeats) -> INVALID
    max_cv: PositiveNumber = 0.1  # coefficient of variation of the repeats' pass times above it -> INVALID
    max_load_per_core: PositiveNumber = 2.0  # 1-min load average / CPU cores, before or after, above it -> INVALID

    @classmethod
    def cross_checks(cls, data: dict, info: ValidationInfo) -> Iterable[tuple[tuple, str]]:
        names = data.get("scenarios", list(DEFAULT_SCENARIOS))
        names = names if isinstance(names, list) else []
        for i, n in enumerate(names):
            if n in names[:i]:
                yield ("scenarios", i), f"duplicate scenario {n!r}"
        options = data.get("scenario_options")
        for name, opts in options.items() if isinstance(options, dict) else ():
            if name not in SCENARIOS:
                yield ("scenario_options", name), f"not a scenario (known: {', '.join(SCENARIOS)})"
            elif name not in names:
                yield ("scenario_options", name), f"scenario {name!r} is not in measure.scenarios"
            elif not isinstance(opts, dict):
                yield ("scenario_options", name), f"must be a mapping, {got(opts)}"
            else:
                for key in sorted(set(opts) - SCENARIOS[name].options, key=str):
                    known = ", ".join(sorted(SCENARIOS[name].options)) or "none"
                    yield ("scenario_options", name, key), f"unknown option for scenario {name} (known: {known})"
        repeats, most = data.get("repeats", 1), data.get("max_repeats", 100)
        if isinstance(repeats, int) and isinstance(most, int) and 1 <= most < repeats:
            yield ("max_repeats",), f"must be >= repeats ({repeats}), got {most}"


from .train import TrainSpec  # noqa: E402  (the train section's records use the field types above)


def _metric_list(v: Any, _: Path) -> list:
    if not isinstance(v, list) or not v:
        raise Invalid(f"must be a non-empty list of metric names, {got(v)}")
    out = []
    for m in v:  # unknown and duplicate metrics are cross-checks (each names its index)
        try:
            out.append(validate_metric(m))
        except (ValueError, TypeError):
            out.append(m)
    return out


class Suite(Record):
    """A suite: datasets, rerankers (or a train section), baseline, metrics, measurement settings."""

    derived_fields = ("path", "raw")
    name: Name
    path: Path | None = None  # the suite file (set by load_suite)
    datasets: Annotated[list[DatasetSpec], Checked(C.nonempty_list())]
    rerankers: Annotated[list[RerankerSpec], Checked(C.nonempty_list(allow_empty=True))] = Field(default_factory=list)
    baseline: OptText = None
    metrics: Annotated[list[str], Checked(_metric_list)] = Field(default_factory=lambda: list(DEFAULT_METRICS))
    measure: MeasureSpec = Field(default_factory=MeasureSpec)
    gate: Gate = Field(default_factory=Gate, exclude=True)  # not in the fingerprint: it judges, never measures
    seed: NonNegInt = 0
    train: TrainSpec | None = None  # the train: section (models trained, then evaluated as rerankers)
    raw: dict[str, Any] = Field(default_factory=dict, exclude=True)  # the mapping as read

    def dataset(self, name: str) -> DatasetSpec:
        return next(d for d in self.datasets if d.name == name)

    def reranker(self, name: str) -> RerankerSpec:
        return next(r for r in self.rerankers if r.name == name)

    @classmethod
    def prepare(cls, data: dict, info: ValidationInfo) -> dict:
        if info.context is not None:  # the train section checks its models' datasets against these
            entries = data.get("datasets") if isinstance(data.get("datasets"), list) else []
            info.context["dataset_names"] = [e.get("name") for e in entries if isinstance(e, dict)]
        return data

    @classmethod
    def cross_checks(cls, data: dict, info: ValidationInfo) -> Iterable[tuple[tuple, str]]:
        train = data.get("train")
        if train is None and "rerankers" not in data:
            yield ("rerankers",), "missing (required unless the suite has a train section)"
        elif train is None and data.get("rerankers") == []:
            yield ("rerankers",), "must be a non-empty list (or give a train section), got an empty list"
        metrics = data.get("metrics")
        seen_metrics: list[str] = []
        for i, m in enumerate(metrics if isinstance(metrics, list) else []):
            try:
                canon = validate_metric(m)
            except (ValueError, TypeError) as exc:
                yield ("metrics", i), str(exc)
                continue
            if canon in seen_metrics:
                yield ("metrics", i), f"duplicate metric {canon!r}"
            seen_metrics.append(canon)
        names = {kind: _raw_names(data.get(kind)) for kind in ("datasets", "rerankers")}
        for kind, listed in names.items():
            seen: dict[str, int] = {}
            for i, n in enumerate(listed):
                if n is not None and n in seen:
                    yield (kind, i, "name"), f"duplicate name {n!r} (also {kind}[{seen[n]}])"
                seen.setdefault(n, i)
        entries = data.get("datasets") if isinstance(data.get("datasets"), list) else []
        stages = {e.get("first_stage", _default_first_stage(e)) for e in entries if isinstance(e, dict)}
        for i, n in enumerate(names["rerankers"]):
            if n is not None and n in stages:
                yield ("rerankers", i, "name"), f"{n!r} is also a dataset's first_stage (a row of its own in reports)"
        all_names = [n for n in names["rerankers"] if n is not None]
        trained = _trained_names(train)
        for i, n in trained:
            if n in all_names:
                yield ("train", "models", i, "name"), f"trained reranker {n!r} is also a name in rerankers"
            elif n in stages:
                yield ("train", "models", i, "name"), f"trained reranker {n!r} is also a dataset's first_stage"
        all_names += [n for _, n in trained]
        baseline = data.get("baseline")
        if isinstance(baseline, str) and baseline not in all_names:
            yield ("baseline",), f"{baseline!r} is not one of the rerankers ({', '.join(all_names)})"


def _default_first_stage(entry: dict) -> str:
    """The first stage of a dataset entry that names none: its source's own, else bm25."""
    fixed = [s.first_stage for key, s in SOURCE_KEYS.items() if entry.get(key) is not None and s.first_stage]
    return fixed[0] if fixed else "bm25"


def _raw_names(entries: Any) -> list[str | None]:
    """Names as written, so that entries with other errors still count."""
    entries = entries if isinstance(entries, list) else []
    return [e.get("name") if isinstance(e, dict) and isinstance(e.get("name"), str) else None for e in entries]


def _trained_names(train: Any) -> list[tuple[int, str]]:
    if not isinstance(train, dict) or not isinstance(train.get("models"), list):
        return []
    out = []
    for i, m in enumerate(train["models"]):
        if isinstance(m, dict) and isinstance(m.get("name"), str):
            backends = m.get("backends") if isinstance(m.get("backends"), list) else list(trainable_backends())
            out += [(i, f"{m['name']}-{b}") for b in backends if isinstance(b, str)]
    return out


__all__ = [
    "DatasetSpec",
    "MeasureSpec",
    "RerankerSpec",
    "Suite",
    "TrainSpec",
    "ValidationError",
    "default_relevance_level",
]
