"""The learning loop's steps as TriBridRAG runs them (``server/training/mlx_qwen3_trainer.py``
``deterministic_split``; ``server/training/reranker_trainer.py`` ``_pair_metrics_from_scores``), trained with
our :class:`~mlx_cross_encoder.Qwen3RerankerTrainer` and exported in TriBridRAG's adapter format.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import TypeVar

from .corpus import TextTriplet, triplets_to_pairs

T = TypeVar("T")
PRIMARY_METRIC = "mrr"


def deterministic_split(items: list[T], dev_split: float = 0.1, seed: int = 0) -> tuple[list[T], list[T]]:
    """TriBridRAG's split: shuffle with ``random.Random(seed)``, the first round(n * dev_split) are dev (at least
    one when n >= 10; dev_split clipped to [0, 0.5])."""
    shuffled = list(items)
    random.Random(int(seed)).shuffle(shuffled)
    ds = max(0.0, min(0.5, float(dev_split)))
    dev_n = int(round(len(shuffled) * ds))
    dev_n = max(1, dev_n) if len(shuffled) >= 10 else min(dev_n, max(0, len(shuffled) - 1))
    dev, train = (shuffled[:dev_n], shuffled[dev_n:]) if dev_n > 0 else ([], shuffled)
    return (shuffled, []) if not train else (train, dev)


def pair_metrics(pos_scores: list[float], neg_scores: list[float]) -> dict[str, float]:
    """TriBridRAG's pairwise proxies: positive above its negative = rank 1, below = 2, tie = 1.5."""
    if not pos_scores or len(pos_scores) != len(neg_scores):
        return {"mrr": 0.0, "ndcg": 0.0, "map": 0.0}
    rr, nd = [], []
    for p, n in zip(pos_scores, neg_scores):
        rank = 1.0 if p > n else 2.0 if p < n else 1.5
        rr.append(1.0 / rank)
        two = 1.0 / math.log2(3.0)
        nd.append(1.0 if rank == 1.0 else two if rank == 2.0 else (1.0 + two) / 2.0)
    return {"mrr": sum(rr) / len(rr), "ndcg": sum(nd) / len(nd), "map": sum(rr) / len(rr)}


def evaluate_triplets(reranker, triplets: list[TextTriplet], batch_size: int = 16) -> dict[str, float]:
    """``pair_metrics`` of a reranker (anything with ``predict(pairs, batch_size=)``) on text triplets."""
    pos = reranker.predict([(t.query, t.positive_text) for t in triplets], batch_size=batch_size)
    neg = reranker.predict([(t.query, t.negative_text) for t in triplets], batch_size=batch_size)
    return pair_metrics([float(x) for x in pos], [float(x) for x in neg])


def train_adapter(
    triplets: list[TextTriplet],
    model: str,
    output,
    *,
    base_model: str | None = None,
    run_id: str = "run",
    **settings,
) -> Path:
    """Train a LoRA adapter on the triplets' pairs (each triplet -> 2 labeled pairs, deduplicated) with
    ``Qwen3RerankerTrainer`` (``settings`` = its config fields), save it in mlx-lm's format to
    ``<output>/mlx_lm`` and in TriBridRAG's to ``<output>/model``; returns the latter."""
    from ..training import Qwen3RerankerConfig, Qwen3RerankerTrainer
    from .adapters import export_tribrid_adapter

    output = Path(output)
    rows = triplets_to_pairs(triplets)
    if not rows:
        raise ValueError("no training pairs: every triplet was skipped (see the materialize counts)")
    config = Qwen3RerankerConfig(model_name=str(model), output_dir=str(output / "trainer"), **settings)
    trainer = Qwen3RerankerTrainer(config)
    trainer.prepare_model()
    trainer.train(rows)
    mlx_dir = trainer.save_adapter(output / "mlx_lm")
    rr = trainer.reranker
    return export_tribrid_adapter(
        mlx_dir,
        output / "model",
        base_model=base_model or str(model),
        yes_token_id=rr.yes_id,
        no_token_id=rr.no_id,
        run_id=run_id,
    )
