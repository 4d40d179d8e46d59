"""Old import path of ``harness.sources`` (dataset sources), kept while harness/training.py still imports it."""

from .sources import _ir_query_text, read_beir_qrels, read_candidates, read_queries, read_trec_qrels  # noqa: F401
