"""What a quality report shows beside the runs (``harness report --quality``): published reference lines, the
first stages of the shared candidate lists, and paired significance tests of each run against the first stage it
reranks and of each MLX run against its PyTorch twin.

* **References** (:data:`REFERENCES`) are published figures, not runs: they are printed as such, never ranked or
  tested.
* **First stages**: the candidate lists themselves in their file order (``harness.sources.read_candidates``),
  scored with ``harness.metrics.evaluate`` (trec_eval semantics) over the judged queries; computed from the files
  when the report is made, and set beside the stored first-stage run of the same list in the given results (a
  ``first_stage`` run of all queries whose dataset was read from that candidate file: ``harness run
  suites/train-full-first-stages.yaml`` stores every list's), marked ``≠`` when the two differ.
* **Significance**: per dataset and candidate set (the run's ``protocol.dataset_fingerprint``), the paired
  randomization test of ``harness.metrics.randomization_p_value`` on per-query nDCG@10, Holm-corrected over the
  runs of the table; the first stage is the first-stage run of the same results file; the twin of ``X-mlx`` is
  ``X-torch`` on the same candidates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .leaderboard import PRIMARY


@dataclass(frozen=True)
class Reference:
    dataset: str
    system: str
    metric: str
    value: float
    protocol: str
    source: str


REFERENCES = (
    Reference(
        "dl19",
        "cross-encoder/ms-marco-MiniLM-L-6-v2 (published; trained on MS MARCO's 500k training queries)",
        "ndcg@10",
        0.7430,
        "reranking BM25 top-100",
        "../shared/data/README.md (figure published with the model)",
    ),
)

#: the first-stage lists of the shared data: (label, dataset, candidate file, qrels file)
FIRST_STAGES = (
    ("BM25", "dl19", "trec-dl/bm25_top100_dl19.json", "trec-dl/qrels_dl19.txt"),
    ("BM25+RM3", "dl19", "trec-dl/bm25_rm3_top100_dl19.json", "trec-dl/qrels_dl19.txt"),
    ("TAS-B", "dl19", "trec-dl/d_bert_kd_tasb_top100_dl19.json", "trec-dl/qrels_dl19.txt"),
    ("SPLADE++", "dl19", "trec-dl/splade_p_p_ensemble_distil_top100_dl19.json", "trec-dl/qrels_dl19.txt"),
    ("ada-002", "dl19", "trec-dl/open_ai_ada2_top100_dl19.json", "trec-dl/qrels_dl19.txt"),
    ("BM25", "dl20", "trec-dl/bm25_top100_dl20.json", "trec-dl/qrels_dl20.txt"),
    ("SPLADE++", "dl20", "trec-dl/splade_p_p_ensemble_distil_top100_dl20.json", "trec-dl/qrels_dl20.txt"),
    ("BM25", "dl21", "trec-dl/bm25_top100_dl21.json", "trec-dl/qrels_dl21.txt"),
)
METRICS = ["ndcg@10", "mrr@10", "map@100", "recall@100"]
ALPHA = 0.05


def first_stage_metrics(candidates: Path, qrels: Path, relevance_level: int = 2) -> tuple[dict[str, float], int]:
    """Metrics of a candidate list in its file order (rank 1 first) over its judged queries, and their count."""
    from ..metrics import evaluate
    from ..sources import read_candidates, read_trec_qrels

    queries, ranked, _ = read_candidates(candidates)
    judgments = read_trec_qrels(qrels)
    judged = {q: judgments[q] for q in queries if q in judgments}
    run = {q: {d: float(len(ranked[q]) - i) for i, (d, _) in enumerate(ranked[q])} for q in judged}
    means, _ = evaluate(judged, run, METRICS, relevance_level)
    return means, len(judged)


def stored_first_stage(results: Sequence[dict[str, Any]], candidates: str) -> dict[str, Any] | None:
    """The first ``first_stage`` run (ok, every query) in ``results`` whose dataset was read from a candidate file
    named like ``candidates`` (``protocol.source`` is ``"<candidates> + <qrels>"``)."""
    name = Path(candidates).name
    for res in results:
        for run in res.get("runs") or []:
            proto = run.get("protocol") or {}
            source = str(proto.get("source") or "").split(" + ")[0]
            if (
                run.get("backend") == "first_stage"
                and run.get("status") == "ok"
                and proto.get("max_queries") is None
                and Path(source).name == name
            ):
                return {**run, "suite": res.get("suite")}
    return None


def first_stage_table(data_dir: Path, results: Sequence[dict[str, Any]] = ()) -> list[str]:
    lines = [
        "| first stage | dataset | queries | " + " | ".join(METRICS) + " | stored run (suite: ndcg@10) |",
        "|:--|:--|--:|" + "--:|" * len(METRICS) + ":--|",
    ]
    for label, dataset, cand, qrels in FIRST_STAGES:
        stored = stored_first_stage(results, cand)
        cell = "—"
        if not (data_dir / cand).is_file():
            if stored is not None:
                cell = f"{stored['suite']}: {stored['metrics'][PRIMARY]:.4f}"
            lines.append(f"| {label} | {dataset} | — | " + " | ".join("—" for _ in METRICS) + f" | {cell} (no {cand})")
            continue
        means, n = first_stage_metrics(data_dir / cand, data_dir / qrels)
        if stored is not None:
            value = stored["metrics"][PRIMARY]
            same = abs(value - means[PRIMARY]) < 1e-9 and (stored.get("protocol") or {}).get("n_queries") == n
            cell = f"{stored['suite']}: {value:.4f}" + ("" if same else " ≠ computed")
        lines.append(
            f"| {label} | {dataset} | {n} | " + " | ".join(f"{means[m]:.4f}" for m in METRICS) + f" | {cell} |"
        )
    return lines


def _holm(pvalues: list[float]) -> list[float]:
    order = np.argsort(pvalues)
    adjusted, running = [0.0] * len(pvalues), 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - k) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def _paired(a: dict[str, float], b: dict[str, float]) -> tuple[float, float, int]:
    """(mean of b - a, randomization p, queries) over the queries both have."""
    from ..metrics import randomization_p_value

    qids = sorted(set(a) & set(b))
    x, y = np.array([a[q] for q in qids]), np.array([b[q] for q in qids])
    return float(np.mean(y - x)), float(randomization_p_value(x, y)), len(qids)


def significance_rows(results: Sequence[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Per (dataset, candidates fingerprint): each reranker run's Δ and Holm-adjusted p against the first stage of
    its results file and, for ``*-mlx`` runs, against the ``*-torch`` twin on the same candidates."""
    tables: dict[tuple[str, str], list[dict[str, Any]]] = {}
    twins: dict[tuple[str, str, str], dict] = {}
    for res in results:
        for run in res["runs"]:
            fp = (run.get("protocol") or {}).get("dataset_fingerprint") or ""
            if run.get("status") == "ok" and run.get("backend") != "first_stage":
                twins[(run["dataset"], fp, run["reranker"])] = run
    for res in results:
        firsts = {
            (r["dataset"], (r.get("protocol") or {}).get("dataset_fingerprint") or ""): r
            for r in res["runs"]
            if r.get("backend") == "first_stage" and r.get("status") == "ok"
        }
        for run in res["runs"]:
            key = (run["dataset"], (run.get("protocol") or {}).get("dataset_fingerprint") or "")
            if run.get("status") != "ok" or run.get("backend") == "first_stage" or key not in firsts:
                continue
            mine = run["per_query"][PRIMARY]
            row = {"reranker": run["reranker"], "value": run["metrics"][PRIMARY], "first_stage": firsts[key]}
            row["vs_first"] = _paired(firsts[key]["per_query"][PRIMARY], mine)
            twin = twins.get((*key, run["reranker"].removesuffix("-mlx") + "-torch"))
            if run["reranker"].endswith("-mlx") and twin is not None:
                row["twin"] = twin["reranker"]
                row["vs_twin"] = _paired(twin["per_query"][PRIMARY], mine)
            tables.setdefault(key, []).append(row)
    for rows in tables.values():
        for name in ("vs_first", "vs_twin"):
            have = [r for r in rows if name in r]
            for r, p in zip(have, _holm([r[name][1] for r in have])):
                r[name + "_holm"] = p
    return tables


def _test_cell(row: dict, name: str) -> str:
    if name not in row:
        return ""
    delta, raw, n = row[name]
    p = row[name + "_holm"]
    return f"{delta:+.4f} (p={raw:.3g}, Holm {p:.3g}{', significant' if p < ALPHA else ''}; {n} q)"


def learning_curves(results: Sequence[dict[str, Any]]) -> list[str]:
    """Dev ``PRIMARY`` at each evaluation of every training in the results (``train.models[i].evaluations``), one
    column per trained model, one row per update at which any was evaluated; ``*`` marks each one's chosen
    checkpoint (its best dev value)."""
    curves: dict[str, dict[int, float]] = {}
    best: dict[str, int | None] = {}
    for res in results:
        for block in (res.get("train") or {}).get("models") or []:
            name = f"{block.get('model')}-{block.get('backend')}"
            points = {e["step"]: e["metrics"].get(PRIMARY) for e in block.get("evaluations") or []}
            if points:
                curves[name], best[name] = points, block.get("best_step")
    if not curves:
        return []
    names = sorted(curves)
    steps = sorted({s for c in curves.values() for s in c})
    lines = ["| update | " + " | ".join(names) + " |", "|--:|" + "--:|" * len(names)]
    for step in steps:
        cells = []
        for n in names:
            v = curves[n].get(step)
            cells.append("" if v is None else f"{v:.4f}" + ("*" if best[n] == step else ""))
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    return lines


def quality_appendix(results: Sequence[dict[str, Any]], data_dir: str | Path) -> str:
    """The Markdown appendix: references, first stages, significance tables (see the module docstring)."""
    lines = ["## References (published figures, not runs)", ""]
    lines += ["| dataset | system | metric | value | protocol | source |", "|:--|:--|:--|--:|:--|:--|"]
    lines += [
        f"| {r.dataset} | {r.system} | {r.metric} | {r.value:.4f} | {r.protocol} | {r.source} |" for r in REFERENCES
    ]
    lines += ["", "## First stages of the shared candidate lists (file order, no reranking)", ""]
    lines += [
        f"Computed from `{data_dir}` with `harness.metrics.evaluate` (trec_eval semantics, relevant = grade ≥ 2)"
        " over each list's judged queries; beside it, the stored first-stage run of the same list in these results"
        " (`harness run suites/train-full-first-stages.yaml`), ≠ when they differ.",
        "",
    ]
    lines += first_stage_table(Path(data_dir), results)
    lines += [
        "",
        f"## Significance of {PRIMARY}",
        "",
        "Paired randomization test on per-query values (10,000 sign flips, seed 0): p is each comparison's own "
        "(the figure for a comparison planned alone), Holm the same p corrected over every row of its table and "
        f"column (a family of all the runs reranking those candidates, twins included); significant: Holm < {ALPHA}. "
        "Δ vs first stage: the run minus the first stage it reranks (same results file); Δ vs twin: an "
        "MLX-trained model minus its PyTorch-trained twin.",
        "",
    ]
    for (dataset, fp), rows in significance_rows(results).items():
        first = rows[0]["first_stage"]
        lines += [
            f"### {dataset} (first stage `{first['reranker']}` {first['metrics'][PRIMARY]:.4f}, candidates "
            f"`{fp[:12]}`)",
            "",
            f"| reranker | {PRIMARY} | Δ vs first stage | Δ vs twin |",
            "|:--|--:|:--|:--|",
        ]
        for r in sorted(rows, key=lambda r: -r["value"]):
            twin = f"`{r['twin']}` " + _test_cell(r, "vs_twin") if "twin" in r else ""
            lines.append(f"| {r['reranker']} | {r['value']:.4f} | {_test_cell(r, 'vs_first')} | {twin} |")
        lines.append("")
    curves = learning_curves(results)
    if curves:
        lines += (
            [
                "",
                f"## Learning curves: dev {PRIMARY} per evaluation",
                "",
                "Each dev query's full candidate list ranked, as the test ranks its lists; * = the checkpoint kept.",
                "",
            ]
            + curves
            + [""]
        )
    return "\n".join(lines) + "\n"
