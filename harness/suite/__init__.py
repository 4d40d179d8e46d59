"""Benchmark suites: a YAML file naming datasets, rerankers, a baseline, metrics and measurement settings.

```yaml
name: trec-dl-2019
datasets:
  - {name: dl19, candidates: data/bm25_top100_dl19.json, qrels: data/qrels_dl19.txt, top_k: 100}
  - {name: scifact, ir_datasets: beir/scifact/test}
  - {name: x, run: run.trec, corpus: corpus.tsv, queries: queries.tsv, qrels: qrels.txt}
  - {name: y, beir: beir/scifact, split: test}
  - {name: z, judged_pool: qrels.txt, corpus: corpus.tsv, queries: queries.tsv, top_k: 20}
rerankers:
  - {name: minilm-mlx, backend: mlx, model: cross-encoder/ms-marco-MiniLM-L-6-v2, dtype: float16}
  - {name: minilm-torch, backend: torch, model: cross-encoder/ms-marco-MiniLM-L-6-v2}
baseline: minilm-torch
metrics: [ndcg@10, mrr@10, map@100, recall@100]
measure: {warmup_queries: 2, repeats: 1}
```

Paths are relative to the suite file's folder and must exist when the suite is loaded (ir_datasets ids are
only checked against ir_datasets' registry: their data is needed when the dataset is loaded, not here).
``model: local:<name>`` is left as is (harness.localmodels builds it later); a model starting with ``.`` or
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

Layout: ``models`` (the typed records: Suite, DatasetSpec, RerankerSpec, MeasureSpec), ``train`` (the train
section's records), ``checks`` (field checks with the suite's wording), ``load`` (YAML -> Suite), ``schema``
(JSON Schema of suite files).
"""

from __future__ import annotations

from .load import SuiteError, load_suite, suite_from_dict
from .models import (
    DEFAULT_METRICS,
    DTYPES,
    DatasetSpec,
    MeasureSpec,
    RerankerSpec,
    Suite,
    default_relevance_level,
)
from .train import DevSplit, RecipeInput, TrainModelSpec, TrainRecipe, TrainSource, TrainSpec

__all__ = [
    "DEFAULT_METRICS",
    "DTYPES",
    "DatasetSpec",
    "DevSplit",
    "MeasureSpec",
    "RecipeInput",
    "RerankerSpec",
    "Suite",
    "SuiteError",
    "TrainModelSpec",
    "TrainRecipe",
    "TrainSource",
    "TrainSpec",
    "default_relevance_level",
    "load_suite",
    "suite_from_dict",
]
