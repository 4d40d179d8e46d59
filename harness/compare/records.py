"""The report object of a comparison (pydantic): one verdict per (dataset, reranker, metric), its exit status."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from ..scenarios import SINGLE_QUERY
from .gate import Gate

QualityLabel = Literal["identical", "within tolerance", "better", "worse", "changed, not significant"]
SpeedLabel = Literal["slower", "faster", "no change", "~ slower, not significant", "~ faster, not significant"]
MemoryLabel = Literal["higher", "lower", "no change", "not measured"]


class QualityVerdict(BaseModel):
    dataset: str
    reranker: str
    metric: str
    base: float | None
    head: float | None
    delta: float | None = Field(description="head mean - base mean over the queries both judged")
    queries: int = Field(description="queries with a value in both files")
    queries_changed: int
    max_abs_diff: float
    p_value: float | None = Field(description="paired randomization test, Holm-adjusted across the run's metrics")
    verdict: QualityLabel
    regression: bool


class SpeedRound(BaseModel):
    """One interleaved round's speed verdict (``harness.compare.rounds``)."""

    ratio: float | None
    p_value: float | None
    verdict: SpeedLabel


class SpeedVerdict(BaseModel):
    dataset: str
    reranker: str
    scenario: str = Field(SINGLE_QUERY, description="harness.scenarios name: single_query or offline")
    samples: Literal["per-query latency", "per-repeat pass time"]
    base_n: int
    head_n: int
    base_median_ms: float | None
    head_median_ms: float | None
    ratio: float | None = Field(description="head median / base median (above 1: slower)")
    p_value: float | None = Field(description="two-sided Mann-Whitney U")
    verdict: SpeedLabel
    invalid: list[str] = Field(
        default_factory=list,
        description="'base'/'head' when that run's speed figures are INVALID (its verdict); with several rounds "
        "'base K'/'head K' (round K)",
    )
    regression: bool = Field(
        description="slower past the factor, the test agrees (in every round), the speed gate is on, and "
        "(speed_needs_valid_runs) every run is VALID"
    )
    rounds: list[SpeedRound] = Field(
        default_factory=list,
        description="each round's verdict when several rounds were compared; the fields above are then pooled "
        "over the rounds (medians of all samples) and p_value is the pooled Mann-Whitney U (descriptive)",
    )


class MemoryVerdict(BaseModel):
    dataset: str
    reranker: str
    measure: str | None = Field(description="the backend's memory_measure")
    base_mb: float | None
    head_mb: float | None
    ratio: float | None
    verdict: MemoryLabel
    regression: bool


class RoundSummary(BaseModel):
    """One (BASE, HEAD) round of an interleaved comparison, judged alone."""

    base: str
    head: str
    exit_status: int
    regressions: list[str]


class Comparison(BaseModel):
    base: str
    head: str
    base_commit: str | None = None
    head_commit: str | None = None
    chip: str | None = None
    gate: Gate
    quality: list[QualityVerdict] = Field(default_factory=list)
    speed: list[SpeedVerdict] = Field(default_factory=list)
    memory: list[MemoryVerdict] = Field(default_factory=list)
    failures: list[str] = Field(default_factory=list, description="runs ok in base that failed in head")
    missing: list[str] = Field(default_factory=list, description="(dataset, reranker) in only one file")
    notes: list[str] = Field(default_factory=list)
    rounds: list[RoundSummary] = Field(
        default_factory=list,
        description="with several rounds (harness compare B1 H1 B2 H2 ...): each round judged alone; the verdicts "
        "above combine them (harness.compare.rounds: speed and memory must regress in every round)",
    )

    @property
    def regressions(self) -> list[str]:
        out = [f"quality: {v.reranker} on {v.dataset} {v.metric} {v.verdict}" for v in self.quality if v.regression]
        out += [f"speed: {v.reranker} on {v.dataset} ({v.scenario}) x{v.ratio:.3f}" for v in self.speed if v.regression]
        out += [f"memory: {v.reranker} on {v.dataset} x{v.ratio:.3f}" for v in self.memory if v.regression]
        out += [f"failed: {f}" for f in self.failures]
        return out

    @property
    def exit_status(self) -> int:
        """0 no regression, 1 regression; a run in only one file is not comparable: 2."""
        if self.missing:
            return 2
        return 1 if self.regressions else 0
