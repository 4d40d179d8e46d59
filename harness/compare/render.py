"""Renderers of a ``Comparison``: Markdown (a PR comment or ``$GITHUB_STEP_SUMMARY``) and JSON."""

from __future__ import annotations

import json

from .records import Comparison


def _num(value: float | None, fmt: str = ".4f") -> str:
    return "–" if value is None else format(value, fmt)


def _p(value: float | None) -> str:
    return "–" if value is None else f"{value:.3g}"


def _mark(regression: bool) -> str:
    return "❌" if regression else ""


def _invalid(sides: list[str], gate) -> str:
    if not sides:
        return ""
    return f" (INVALID {' and '.join(sides)} run{': not gated' if gate.speed_needs_valid_runs else ''})"


def _rounds(v) -> str:
    if not v.rounds:
        return ""
    return "; rounds: " + ", ".join(f"×{_num(r.ratio, '.3f')} p={_p(r.p_value)} {r.verdict}" for r in v.rounds)


def render_json(comparison: Comparison) -> str:
    data = comparison.model_dump(mode="json")
    data["regressions"] = comparison.regressions
    data["exit_status"] = comparison.exit_status
    return json.dumps(data, indent=1, allow_nan=False)


def _header(c: Comparison) -> list[str]:
    verdict = {0: "no regression", 1: "REGRESSION", 2: "not comparable"}[c.exit_status]
    g = c.gate
    lines = [
        f"## harness compare: {verdict}",
        "",
        f"base `{c.base}` ({(c.base_commit or '?')[:10]}) vs head `{c.head}` ({(c.head_commit or '?')[:10]}), "
        f"chip: {c.chip or 'unknown'}",
        "",
        f"Gate: quality |Δ| ≤ {g.quality_tolerance:g} (paired randomization test, Holm, α={g.quality_alpha:g}"
        f"{', drop must be significant' if g.quality_requires_significance else ''}); speed ratio > "
        f"{g.speed_factor:g} and Mann-Whitney U p < {g.speed_alpha:g}{'' if g.speed_gate else ' (reported, not gated)'}; "
        f"memory ratio > {g.memory_factor:g}{'' if g.memory_gate else ' (not gated)'}."
        + (
            f" Speed gates only when {'every run is' if c.rounds else 'both runs are'} VALID."
            if g.speed_needs_valid_runs
            else ""
        ),
        "",
    ]
    if c.rounds:
        lines += [
            f"Rounds: {len(c.rounds)} interleaved (BASE, HEAD) pairs, each judged alone; speed and memory regress "
            "only when every round and the figures pooled over the rounds (below) agree; a quality drop or a crash "
            "counts in any round.",
            "",
        ]
        for k, r in enumerate(c.rounds, 1):
            found = "; ".join(r.regressions) if r.regressions else "no regression"
            lines.append(f"- round {k} (`{r.base}` vs `{r.head}`): exit {r.exit_status}, {found}")
        lines.append("")
    for item in c.regressions:
        lines.append(f"- ❌ {item}")
    for item in c.missing:
        lines.append(f"- ⚠️ not comparable: {item}")
    for item in c.notes:
        lines.append(f"- note: {item}")
    return lines + ([""] if c.regressions or c.missing or c.notes else [])


def render_markdown(c: Comparison) -> str:
    lines = _header(c)
    lines += [
        "### Quality",
        "",
        "| dataset | reranker | metric | base | head | Δ | queries changed | p (Holm) | verdict |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for v in c.quality:
        lines.append(
            f"| {v.dataset} | {v.reranker} | {v.metric} | {_num(v.base)} | {_num(v.head)} | "
            f"{_num(v.delta, '+.4f')} | {v.queries_changed}/{v.queries} | {_p(v.p_value)} | "
            f"{v.verdict} {_mark(v.regression)} |"
        )
    lines += [
        "",
        "### Speed",
        "",
        "| dataset | reranker | scenario | samples (base/head) | median ms base | median ms head | "
        "ratio | p (Mann-Whitney U) | verdict |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for v in c.speed:
        lines.append(
            f"| {v.dataset} | {v.reranker} | {v.scenario} | {v.samples} ({v.base_n}/{v.head_n}) | "
            f"{_num(v.base_median_ms, '.2f')} | {_num(v.head_median_ms, '.2f')} | {_num(v.ratio, '.3f')} | "
            f"{_p(v.p_value)} | {v.verdict}{_invalid(v.invalid, c.gate)}{_rounds(v)} {_mark(v.regression)} |"
        )
    lines += [
        "",
        "### Memory",
        "",
        "| dataset | reranker | measure | peak MiB base | peak MiB head | ratio | verdict |",
        "| --- | --- | --- | ---: | ---: | ---: | --- |",
    ]
    for v in c.memory:
        lines.append(
            f"| {v.dataset} | {v.reranker} | {v.measure or '–'} | {_num(v.base_mb, '.1f')} | "
            f"{_num(v.head_mb, '.1f')} | {_num(v.ratio, '.3f')} | {v.verdict} {_mark(v.regression)} |"
        )
    return "\n".join(lines) + "\n"


RENDERERS = {"md": render_markdown, "json": render_json}
