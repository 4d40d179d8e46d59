"""Quality-vs-throughput plots of a leaderboard (matplotlib + seaborn, Agg backend: no display needed).

One figure per dataset section: the primary metric against pairs/s, one point per system per chip (colour: chip,
marker: backend), the 95% bootstrap interval of the median pairs/s as a horizontal bar, and the Pareto front (no
other system of that chip is both faster and better) as a dashed step line. The dataset's first stage, which has
no speed, is a horizontal dotted line. One panel per scenario measured (single_query, offline). Written as SVG and
PNG; the Markdown links the SVG (and the PNG beside it).
"""

from __future__ import annotations

import re
from pathlib import Path

from ..results import FIRST_STAGE
from ..scenarios import OFFLINE, SINGLE_QUERY
from .leaderboard import Row

LABEL_OFFSETS = (6, -14, 20, -28, 34, -42)
SCENARIO_TITLES = {SINGLE_QUERY: "single query (one query's top-k per call)", OFFLINE: "offline (batched)"}


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "dataset"


def points(rows: list[Row], metric: str, scenario: str) -> list[dict]:
    """The plotted points: ok measured runs with both the metric and the scenario's pairs/s."""
    out = []
    for r in rows:
        speed = r.speed(scenario)
        value = r.metrics.get(metric)
        if r.status != "ok" or r.backend == FIRST_STAGE or speed is None or not speed.pairs_per_s or value is None:
            continue
        out.append(
            {
                "reranker": r.reranker,
                "chip": r.chip,
                "backend": r.backend,
                "x": speed.pairs_per_s,
                "low": speed.low,
                "high": speed.high,
                "y": value,
                "verdict": speed.verdict,
            }
        )
    return out


def pareto_front(pts: list[dict]) -> list[dict]:
    """The points no other point dominates (at least as fast and as good, better in one), sorted by speed."""
    front = [
        p
        for p in pts
        if not any(q["x"] >= p["x"] and q["y"] >= p["y"] and (q["x"] > p["x"] or q["y"] > p["y"]) for q in pts)
    ]
    return sorted(front, key=lambda p: p["x"])


def _draw_points(ax, pts: list[dict]) -> None:
    """Each system's point with its pairs/s interval as a grey bar and its name (INVALID runs say so)."""
    for i, p in enumerate(sorted(pts, key=lambda p: (p["y"], p["x"]))):
        if p["low"] is not None:
            ax.errorbar(
                p["x"],
                p["y"],
                xerr=[[p["x"] - p["low"]], [p["high"] - p["x"]]],
                fmt="none",
                ecolor="grey",
                elinewidth=1,
                capsize=3,
                zorder=2,
            )
        label = p["reranker"] + (" (INVALID)" if p["verdict"] == "INVALID" else "")
        dy = LABEL_OFFSETS[i % len(LABEL_OFFSETS)]  # staggered: systems of equal quality sit side by side
        ax.annotate(
            label,
            (p["x"], p["y"]),
            textcoords="offset points",
            xytext=(4, dy),
            fontsize=7,
            arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "grey"} if abs(dy) > 8 else None,
        )


def _draw_fronts(ax, pts: list[dict], chips) -> None:
    """Each chip's Pareto front as a dashed step line (when it has more than one point)."""
    for chip in chips:
        front = pareto_front([p for p in pts if p["chip"] == chip])
        if len(front) > 1:
            ax.step(
                [p["x"] for p in front],
                [p["y"] for p in front],
                where="post",
                ls="--",
                lw=1,
                c="black",
                alpha=0.5,
                zorder=1,
            )


def _draw_first_stages(ax, firsts: list[Row], metric: str) -> None:
    """The first stages (no speed) as dotted horizontal lines, named at the left edge."""
    for r in firsts:
        ax.axhline(r.metrics[metric], ls=":", c="grey", lw=1)
        ax.annotate(
            f"{r.reranker} (first stage)",
            (0.01, r.metrics[metric]),
            xycoords=("axes fraction", "data"),
            textcoords="offset points",
            xytext=(0, 3),
            fontsize=8,
            color="grey",
        )


def write_pareto(rows: list[Row], metric: str, title: str, stem: Path) -> Path | None:
    """Write ``stem.svg`` and ``stem.png``; the SVG's path, or None when no run has both figures."""
    scenarios = [s for s in dict.fromkeys(s for r in rows for s in r.speeds) if points(rows, metric, s)]
    if not scenarios:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    plt.rcParams["svg.hashsalt"] = "harness-report"  # stable element ids: the SVG changes only with the data
    plt.rcParams["svg.fonttype"] = "none"  # text stays text: searchable, smaller
    fig, axes = plt.subplots(1, len(scenarios), figsize=(9.5 * len(scenarios), 5.2), squeeze=False)
    firsts = [r for r in rows if r.backend == FIRST_STAGE and r.status == "ok" and r.metrics.get(metric) is not None]
    for ax, scenario in zip(axes[0], scenarios):
        pts = points(rows, metric, scenario)
        frame = pd.DataFrame(pts)
        sns.scatterplot(data=frame, x="x", y="y", hue="chip", style="backend", s=80, ax=ax, zorder=3)
        _draw_points(ax, pts)
        _draw_fronts(ax, pts, frame["chip"].unique())
        _draw_first_stages(ax, firsts, metric)
        if frame["x"].max() / frame["x"].min() > 20:
            ax.set_xscale("log")
        ax.set_xlabel("pairs/s: median over timed passes [95% bootstrap interval]")
        ax.set_ylabel(metric)
        ax.set_title(SCENARIO_TITLES.get(scenario, scenario), fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=7, frameon=False)
        ax.margins(y=0.15)
    fig.suptitle(f"{title}: quality vs throughput (dashed: Pareto front per chip)")
    fig.tight_layout()
    stem.parent.mkdir(parents=True, exist_ok=True)
    svg, png = stem.with_suffix(".svg"), stem.with_suffix(".png")
    fig.savefig(svg, metadata={"Date": None})
    fig.savefig(png, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return svg
