"""The results file's typed records (schema 3, pydantic): file, environment, run, protocol, perf, scenarios,
train block.

Known keys are typed and checked; keys a later harness adds are kept (``extra="allow"``), so that readers ignore
what they do not know. Older files are read by ``harness.results.store.upgrade``: schema 1 only lacks
``complete``, schema 2 only lacks ``scenarios`` (every run of it was the single-query protocol, in ``perf``).
Numbers are strict (``true`` or ``"0.5"`` is not a number); JSON has no NaN, so non-finite values
are stored as null.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION = 3
FIRST_STAGE = "first_stage"  # the ``backend`` of a dataset's first-stage run
STATUSES = ("ok", "error")
TRAIN_NUMBERS = ("wall_time_s", "train_time_s", "tokens_per_s", "peak_memory_mb")  # ok train blocks: number or null

Number = Annotated[float, Field(strict=True)] | None
Count = Annotated[int, Field(strict=True)] | None
Name = Annotated[str, Field(min_length=1)]


class Open(BaseModel):
    """A record that keeps keys it does not know (a later harness may add some)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Latency(Open):
    p50: Number
    p95: Number
    p99: Number
    p90: Number = None  # schema 3
    mean: Number = None
    min: Number = None
    max: Number = None


class Perf(Open):
    """Throughput and memory of one measured run (docs/results-schema.md, ``perf``)."""

    pairs_per_s: Number  # single_query figures (null when the run did not measure single_query)
    tokens_per_s: Number
    latency_ms: Latency | None
    peak_memory_mb: Number  # the peak over every scenario's timed passes
    peak_rss_mb: Number = None
    load_s: Number = None
    timed_s: Number = None
    queries: Count = None
    pairs: Count = None
    tokens: Count = None
    mean_tokens_per_pair: Number = None
    pairs_truncated: Count = None
    warmup_queries: Count = None
    repeats: Count = None
    repeats_identical: bool | None = None
    max_repeat_abs_diff: Number = None
    batch_size: Count = None
    pass_s: list[Annotated[float, Field(strict=True)]] | None = None  # each timed repeat's seconds, in order
    load_avg_before: Number = None  # os.getloadavg()[0] before the timed passes
    load_avg_after: Number = None
    cpu_count: Count = None


class Verdict(Open):
    """Whether a run's speed figures can be trusted (``harness.run.verdict``); quality is not judged here."""

    status: Literal["VALID", "INVALID"]
    reasons: list[str] = Field(default_factory=list)
    cv: Number = None  # coefficient of variation of ``perf.pass_s`` (None with one repeat)


class ScenarioRecord(Open):
    """One scenario's timed passes in a run (``harness.scenarios``): every pass's figures are kept."""

    scenario: Name  # a name of harness.scenarios.SCENARIOS
    repeats: Annotated[int, Field(strict=True, ge=1)]  # timed passes made
    pass_s: list[Annotated[float, Field(strict=True)]]  # seconds of each timed pass, in order
    pairs_per_s: list[Number]  # each pass's throughput
    tokens_per_s: list[Number]
    pairs: Count  # per pass
    tokens: Count  # per pass (after truncation)
    samples: Count  # timed calls over all passes: queries x passes (single_query), batches x passes (offline)
    min_time_s: Number = None
    min_time_reached: bool | None = None  # false: max_repeats passes were made before min_time_s was reached
    latency_ms: Latency | None = None  # single_query: per-query latency over every pass
    batches: Count = None  # offline: batches per pass
    batch_size: Count = None
    max_batch_tokens: Count = None
    padded_tokens: Count = None  # offline: rows x widest row, summed over a pass's batches
    peak_memory_mb: Number = None
    load_avg_before: Number = None
    load_avg_after: Number = None
    cpu_count: Count = None
    max_repeat_abs_diff: Number = None  # largest |score - this scenario's first pass| over its passes
    repeats_agree: bool | None = None  # every pass within the dtype's tolerance of this scenario's first pass
    max_abs_diff: Number = None  # largest |score - evaluated score| over every pass of this scenario
    scores_agree: bool | None = None  # every pass within the dtype's tolerance of the evaluated scores
    score_tolerance: dict[str, float] | None = None  # {atol, rtol} used (harness.run.verdict.SCORE_TOLERANCE)
    verdict: Verdict | None = None


def single_query_perf(record: ScenarioRecord) -> dict[str, Any]:
    """``perf``'s single_query figures from the single_query scenario's record: throughput over every timed pass
    (the worker's run and a merge of shards' pooled record alike)."""
    timed = sum(record.pass_s)
    return {
        "pairs_per_s": record.repeats * record.pairs / timed,
        "tokens_per_s": record.repeats * record.tokens / timed,
        "latency_ms": record.latency_ms,
        "timed_s": timed,
        "repeats": record.repeats,
        "pass_s": list(record.pass_s),
    }


class ShardRef(Open):
    index: Annotated[int, Field(strict=True, ge=1)]
    count: Annotated[int, Field(strict=True, ge=1)]


class MergedShard(Open):
    """One shard file merged by ``harness merge`` (``harness.results.merge``)."""

    file: str
    shard: str  # "i/n"
    environment: Environment | None = None


class Protocol(Open):
    """How the figures were made: the dataset loader's record, then the reranker's resolved settings."""

    first_stage: str | None = None
    top_k: Count = None
    max_queries: Count = None
    relevance_level: Count = None
    seed: Count = None
    add_judged_positives: bool | None = None
    n_queries: Count = None
    n_pairs: Count = None
    source: str | None = None
    dataset_fingerprint: str | None = None
    model: str | None = None
    model_path: str | None = None
    model_fingerprint: str | None = None
    max_length: Count = None
    max_length_source: str | None = None
    dtype: str | None = None
    batch_size: Count = None
    warmup_queries: Count = None
    repeats: Count = None
    shard: ShardRef | None = None  # harness run --shard: this run's queries are that shard's
    full_dataset_fingerprint: str | None = None  # sharded runs: the whole dataset's (dataset_fingerprint: the shard's)


class TrainBlock(Open):
    """One training (model, backend): identical in ``train.models`` and in the runs of that trained reranker."""

    model: Name
    backend: Name
    status: Literal["ok", "error"]
    error: str | None = None
    exit_code: int | None = None  # a failed training worker's exit status, as Run.exit_code
    traceback: str | None = None
    signal: str | None = None
    log_tail: str | None = None
    steps: Count = None
    wall_time_s: Number = None
    train_time_s: Number = None
    tokens_per_s: Number = None
    peak_memory_mb: Number = None

    @model_validator(mode="after")
    def _by_status(self) -> TrainBlock:
        if self.status == "error" and not self.error:
            raise ValueError("a failed training needs a non-empty error")
        if self.status == "ok":
            missing = [k for k in (*TRAIN_NUMBERS, "steps") if k not in self.model_fields_set]
            if missing or self.steps is None:
                raise ValueError(f"an ok training needs {', '.join(missing or ['steps'])}")
        return self


class Run(Open):
    """One (dataset, reranker) run, ok or error; the first stage is a run with backend ``first_stage``."""

    dataset: Name
    reranker: Name
    backend: Name
    device: str | None = None
    status: Literal["ok", "error"]
    error: str | None = None
    exit_code: int | None = None  # a failed worker's exit status (negative: the signal that ended it)
    traceback: str | None = None
    signal: str | None = None
    log_tail: str | None = None
    metrics: dict[str, Number]
    per_query: dict[str, dict[str, Number]]
    perf: Perf | None = None
    latency_samples_ms: list[Annotated[float, Field(strict=True)]] | None = None
    protocol: Protocol
    system: dict[str, Any] | None = None
    warnings: list[str] = Field(default_factory=list)
    verdict: Verdict | None = None  # ok reranker runs measured by this harness and later (absent in older files)
    scenarios: dict[str, ScenarioRecord] | None = None  # schema 3: by scenario name, in the order measured
    train: TrainBlock | None = None

    @model_validator(mode="after")
    def _by_status(self) -> Run:
        if self.status == "error" and not self.error:
            raise ValueError("an error run needs a non-empty error message")
        if self.status == "ok" and self.backend != FIRST_STAGE:
            if self.perf is None:
                raise ValueError("an ok reranker run needs perf")
            if self.latency_samples_ms is None:
                raise ValueError("an ok reranker run needs latency_samples_ms")
        return self


class Environment(Open):
    """Where it ran (``harness.environment.capture_environment``)."""

    chip: dict[str, Any] = Field(default_factory=dict)
    os: dict[str, Any] | None = None
    python: dict[str, Any] | None = None
    packages: dict[str, str | None] = Field(default_factory=dict)
    blas: str | None = None
    git: dict[str, Any] | None = None
    date: str | None = None
    hostname_hash: str | None = None


class TrainSummary(Open):
    models: list[TrainBlock]


class ResultsFile(Open):
    """One ``harness run``: the suite, where it ran, every run; ``complete`` false when it was cut short."""

    schema_version: Literal[3] = Field(alias="schema")
    suite: Name
    suite_path: str | None = None
    baseline: str | None = None
    metrics: list[str] = Field(default_factory=list)
    measure: dict[str, Any] = Field(default_factory=dict)
    seed: Count = None
    selection: dict[str, Any] = Field(default_factory=dict)
    fingerprint: str | None = None  # sha256 of the suite's settings and the selection: --resume needs it equal
    complete: bool | None = None  # null: not recorded (schema 1 files)
    incomplete_reason: str | None = None
    environment: Environment
    runs: list[Run]
    train: TrainSummary | None = None
    merged_shards: list[MergedShard] | None = None  # harness merge: the shard files, in shard order
