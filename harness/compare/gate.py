"""The thresholds of a comparison (``Gate``): a suite's ``gate:`` section (typed here, a field of
``harness.suite.Suite``, recorded in each results file by ``harness run``), or any YAML file's ``gate:`` mapping,
overridden by flags. This module imports nothing heavy: the suite loader imports it."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import Field, ValidationError

from ..records import Record, message_of
from .errors import CompareInputError


class Gate(Record):
    """When a difference is a regression. Defaults follow asv (factor 1.10, Mann-Whitney U) for speed."""

    quality_tolerance: float = Field(1e-4, ge=0, description="|mean difference| at or below this is within tolerance")
    quality_alpha: float = Field(0.05, gt=0, lt=1, description="significance level of the paired test (Holm)")
    quality_requires_significance: bool = Field(
        False,
        description="a quality drop is a regression only when the paired test agrees; false: any drop beyond the "
        "tolerance fails (inference is deterministic, so a drop is a real change)",
    )
    speed_factor: float = Field(1.10, gt=1, description="head/base latency ratio (medians) that may be a regression")
    speed_alpha: float = Field(0.002, gt=0, lt=1, description="two-sided Mann-Whitney U p below this agrees")
    speed_gate: bool = Field(True, description="false: speed verdicts are reported, never fail (hosted runners)")
    speed_needs_valid_runs: bool = Field(
        True,
        description="a speed verdict gates only when both runs are VALID (harness.run.verdict: enough samples, "
        "steady passes, an unloaded machine); on an INVALID run it is reported, never fails",
    )
    min_repeats_for_repeat_samples: int = Field(
        5, ge=2, description="with at least this many repeats, speed uses one sample per repeat (pass time)"
    )
    memory_factor: float = Field(1.05, gt=1, description="head/base peak memory ratio above which it is a regression")
    memory_gate: bool = True
    permutations: int = Field(10000, ge=100, description="random sign flips of the paired test (exact when fewer)")
    seed: int = 0

    @classmethod
    def from_yaml(cls, path: str | Path) -> Gate:
        """The ``gate:`` mapping of a YAML file (a suite or a file of its own)."""
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise CompareInputError(f"{path}: cannot read the gate ({exc})") from None
        section = data.get("gate") if isinstance(data, dict) else None
        if not isinstance(section, dict):
            raise CompareInputError(f"{path}: no gate: mapping")
        return cls.checked(section, str(path))

    @classmethod
    def checked(cls, values: dict, where: str) -> Gate:
        try:
            return cls.model_validate(values, context={"source": where})
        except ValidationError as exc:
            wrong = "; ".join(f"gate.{'.'.join(map(str, e['loc']))}: {message_of(e)}" for e in exc.errors())
            raise CompareInputError(f"{where}: {wrong}") from None

    def updated(self, **overrides) -> Gate:
        """This gate with the flags that were given (None: not given)."""
        given = {k: v for k, v in overrides.items() if v is not None}
        return self.checked({**self.model_dump(), **given}, "flags")
