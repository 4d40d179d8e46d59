"""The ``judged_pool`` source: each query's judged documents are its candidates, in corpus order.

For test collections whose qrels judge a fixed pool per query (NovelEval-2306: 20 passages per question, every one
judged), the pool itself is the list to rerank: no run file is needed, so a suite names only the collection's own
files (``judged_pool: qrels.txt``, ``corpus``, ``queries``) and nothing derived from them is kept beside it.

* Candidates of a query: every document its qrels judge (any grade, 0 included), in the order of the corpus file;
  first-stage score ``-1, -2, ...`` in that order, so the first-stage row (``judged-pool``) ranks them in corpus
  order. ``top_k`` cuts the list like any first stage.
* The qrels file is also the judgments. A judged document missing from the corpus is refused, naming the qrels
  file, its line, the query and the document: a candidate list with a hole would differ silently from the pool.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from . import _assemble
from .readers import DatasetError, Ranked, read_corpus, read_queries, read_trec_qrels
from .types import RerankDataset

if TYPE_CHECKING:
    from ..suite import DatasetSpec

FIRST_STAGE_SOURCE = "judged pool (qrels) in corpus order"


def judged_pool(qrels: dict[str, dict[str, int]], corpus_order: dict[str, int]) -> Ranked:
    """qid -> [(docid, score)]: the query's judged documents in corpus order, scores -1, -2, ...
    ``corpus_order`` maps each judged docid to its position in the corpus (every judged docid must be there)."""
    ranked: Ranked = {}
    for qid, judged in qrels.items():
        docs = sorted(judged, key=lambda d: corpus_order[d])
        ranked[qid] = [(d, -float(i + 1)) for i, d in enumerate(docs)]
    return ranked


def _qrels_line(path: Path, qid: str, docid: str) -> int | None:
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            cols = line.split()
            if len(cols) == 4 and cols[0] == qid and cols[2] == docid:
                return n
    return None


def load_judged_pool(spec: DatasetSpec, max_queries: int | None, seed: int) -> RerankDataset:
    qrels = read_trec_qrels(spec.judged_pool)
    wanted = {d for docs in qrels.values() for d in docs}
    texts = read_corpus(spec.corpus, wanted)  # file order: the order of the candidates
    for qid, docs in qrels.items():
        for docid in docs:
            if docid not in texts:
                line = _qrels_line(spec.judged_pool, qid, docid)
                raise DatasetError(
                    f"{spec.judged_pool}:{line}: query {qid} judges document {docid}, which is not in the corpus "
                    f"{spec.corpus}: a judged_pool dataset needs every judged document's text"
                )
    ranked = judged_pool(qrels, {d: i for i, d in enumerate(texts)})
    return _assemble(
        spec,
        max_queries,
        seed,
        source=f"{spec.judged_pool} + {spec.corpus} + {spec.queries}",
        queries=read_queries(spec.queries),
        qrels=qrels,
        rank=lambda qids: ranked,
        texts=lambda ids: texts,
        candidate_qids={q for q, docs in ranked.items() if docs},
        protocol={"first_stage_source": FIRST_STAGE_SOURCE},
    )
