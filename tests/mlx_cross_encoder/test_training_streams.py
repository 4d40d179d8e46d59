"""A micro-batch split over MLX CPU streams trains as the single-stream trainer does (same updates)."""

from __future__ import annotations

import mlx_cross_encoder  # noqa: F401  # isort: skip
import numpy as np
import pytest
from builders import bert_cross_encoder, qwen3_causal_lm
from mlx.utils import tree_flatten
from training_helpers import toy_groups, toy_pairs

from mlx_cross_encoder import MLXCrossEncoder
from mlx_cross_encoder.training import (
    MLXCrossEncoderConfig,
    MLXCrossEncoderTrainer,
    Qwen3RerankerConfig,
    Qwen3RerankerTrainer,
)

COMMON = dict(
    learning_rate=5e-3,
    num_epochs=2,
    warmup_steps=1,
    max_grad_norm=0.5,
    show_progress_bar=False,
    logging_steps=1,
    seed=1,
    lora_rank=4,
    lora_alpha=8,
)


def train(kind: str, model_dir, out, streams: int, monkeypatch):
    monkeypatch.setenv("MLX_CROSS_ENCODER_CPU_STREAMS", str(streams))
    if kind == "encoder":  # 20 pairs in micro-batches of 8: split 3+3+2 over 3 streams, the last 2+2
        config = MLXCrossEncoderConfig(output_dir=str(out), loss="bce", batch_size=8, fine_tune_type="lora", **COMMON)
        trainer = MLXCrossEncoderTrainer(MLXCrossEncoder(model_dir), config)
        trainer.train(toy_pairs(5))
    else:  # 8 groups of 4 in micro-batches of 4 groups: 2+1+1 over 3 streams
        config = Qwen3RerankerConfig(
            model_name=str(model_dir),
            output_dir=str(out),
            loss="listwise",
            group_size=4,
            batch_size=4,
            max_length=128,
            **COMMON,
        )
        trainer = Qwen3RerankerTrainer(config)
        trainer.train(toy_groups(8, 3))
    assert len(trainer._cpu_streams()) == (streams if streams > 1 else 1)
    history = [r for r in trainer.history if r["type"] == "train"]
    return history, {k: np.array(v) for k, v in tree_flatten(trainer.model.trainable_parameters())}


@pytest.mark.parametrize("kind", ["encoder", "llm"])
def test_streams_make_the_single_stream_updates(kind, tmp_path, monkeypatch):
    model_dir = (
        bert_cross_encoder(tmp_path / "m", seed=0) if kind == "encoder" else qwen3_causal_lm(tmp_path / "m", seed=0)
    )
    one, w_one = train(kind, model_dir, tmp_path / "one", 1, monkeypatch)
    three, w_three = train(kind, model_dir, tmp_path / "three", 3, monkeypatch)
    assert len(one) == len(three) == (6 if kind == "encoder" else 4)
    # float32 sums in another order: the same numbers to ~1e-6
    assert [r["loss"] for r in three] == pytest.approx([r["loss"] for r in one], rel=1e-5)
    assert [r["grad_norm"] for r in three] == pytest.approx([r["grad_norm"] for r in one], rel=1e-5)
    assert w_one.keys() == w_three.keys()
    for k in w_one:
        np.testing.assert_allclose(w_three[k], w_one[k], rtol=0, atol=1e-5, err_msg=k)
