"""Scoring and dev evaluation of the model an MLX trainer is training (mixed into
:class:`~.trainer.RerankerTrainerBase`): raw scores in input order, dev rankings scored by a metric function, and
the best checkpoint kept in ``<output_dir>/best`` and loaded back."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import mlx.core as mx
import numpy as np

from ..base import length_sorted_batches, validate_pairs
from .checkpoint import recover_dir
from .data import eval_rankings
from .lora import read_adapter_config, save_adapter
from .metrics import ranking_metrics

logger = logging.getLogger("mlx_cross_encoder.training")

BEST_DIR = "best"

MetricFn = Callable[[dict, dict], dict]


class DevEvaluation:
    """What the trainer uses to score and evaluate; it supplies ``config``, ``model``, ``adapter_config``,
    ``output_dir``, ``prepare_model``, ``_encode``, ``_scores``, ``_adapter_extra`` and ``_log``."""

    def predict_scores(self, pairs, batch_size: int | None = None) -> np.ndarray:
        """Raw scores (logits) of the model being trained, in input order."""
        self.prepare_model()
        pairs, single = validate_pairs(pairs)
        batch_size = batch_size or self.config.eval_batch_size
        was_training = self.model.training
        self.model.eval()
        out = np.empty(len(pairs), dtype=np.float32)
        lengths = [len(q) + len(d) for q, d in pairs]  # characters: a cheap proxy to group similar lengths
        for idx in length_sorted_batches(lengths, batch_size):
            inputs, _ = self._encode([pairs[i] for i in idx])
            out[idx] = np.asarray(self._scores(inputs).astype(mx.float32))
        if was_training:
            self.model.train()
        return out[0] if single else out

    def evaluate(self, eval_data, metric_fn: MetricFn | None = None) -> dict[str, float]:
        """Rank each dev query's documents and score the rankings with ``metric_fn(run, qrels)``.

        ``eval_data`` is any accepted record format (records of one query are merged into one ranking);
        ``metric_fn`` defaults to :func:`~mlx_cross_encoder.training.metrics.ranking_metrics` (nDCG@10, MRR@10).
        """
        queries, docs, qrels = eval_data if isinstance(eval_data, tuple) else eval_rankings(eval_data)
        pairs, keys = [], []
        for qid, texts in docs.items():
            for di, text in enumerate(texts):
                pairs.append((queries[qid], text))
                keys.append((qid, f"{qid}-d{di}"))
        scores = self.predict_scores(pairs)
        run: dict[str, dict[str, float]] = {}
        for (qid, did), s in zip(keys, np.atleast_1d(scores)):
            run.setdefault(qid, {})[did] = float(s)
        return {k: float(v) for k, v in (metric_fn or ranking_metrics)(run, qrels).items()}

    def _evaluate_step(self, dev, metric_fn, state, log_path) -> bool:
        """Evaluate, track the best (saved to ``best/``), return True when early stopping triggers."""
        cfg = self.config
        metrics = self.evaluate(dev, metric_fn)
        value = cfg.selection_value(metrics)
        improved = cfg.improves(value, state["best_metric"])
        if improved:
            state.update(best_metric=value, best_step=state["step"], best_metrics=metrics, evals_without_improvement=0)
            save_adapter(
                self.model,
                self.output_dir / BEST_DIR,
                self.adapter_config,
                {**self._adapter_extra(), "step": state["step"], "metrics": metrics},
            )
        else:
            state["evals_without_improvement"] += 1
        state["last_eval"] = metrics
        self._log(log_path, {"type": "eval", "step": state["step"], "metrics": metrics, "improved": improved})
        patience = cfg.early_stopping_patience
        if patience and state["evals_without_improvement"] >= patience:
            state["stopped_early"] = True
            logger.info("early stopping at step %d (%d evaluations without improvement)", state["step"], patience)
            return True
        return False

    def _load_trainable(self, adapter_dir: Path) -> None:
        recover_dir(adapter_dir)
        read_adapter_config(adapter_dir)
        weights = mx.load(str(adapter_dir / "adapters.safetensors"))
        self.model.load_weights(list(weights.items()), strict=False)
        mx.eval(self.model.parameters())
