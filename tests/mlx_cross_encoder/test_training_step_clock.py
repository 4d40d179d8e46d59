"""benchmarks/gpu_train.py's warm-up-excluded figures: the first W updates are left out of the window, and the MLX
trainer's clock stamps its start and every update (so the window holds exactly the updates after the warm-up)."""

import statistics
import sys
from pathlib import Path

import mlx_cross_encoder  # noqa: F401  # isort: skip  (loads the optimized BLAS before mlx.core)
import mlx.core as mx
import pytest
from builders import bert_cross_encoder
from training_helpers import toy_pairs

from mlx_cross_encoder.training import MLXCrossEncoderConfig, MLXCrossEncoderTrainer

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import gpu_train  # noqa: E402


def test_steady_figures_leave_the_warm_up_out():
    # start, then the end of updates 1..5: update seconds 10, 1, 2, 1, 6 and tokens 100, 100, 50, 30, 90
    stamps = [0.0, 10.0, 11.0, 13.0, 14.0, 20.0]
    st = gpu_train.steady(stamps, warmup=2, step_tokens=[100, 100, 50, 30, 90])
    timed = [2.0, 1.0, 6.0]  # updates 3, 4, 5
    assert st["timed_steps"] == 3
    assert st["warmup_s"] == 11.0
    assert st["window_s"] == sum(timed)
    assert st["mean_step_s"] == pytest.approx(statistics.mean(timed))
    assert (st["median_step_s"], st["min_step_s"], st["max_step_s"]) == (statistics.median(timed), 1.0, 6.0)
    assert st["window_tokens"] == 50 + 30 + 90
    assert st["tokens_per_s"] == pytest.approx(170 / 9)
    assert st["mean_step_s_without_last"] == pytest.approx(statistics.mean(timed[:-1]))
    # the LLM baseline's loop has no start event: the window is the same, the warm-up's length unknown
    assert gpu_train.steady([None, *stamps[1:]], 2, None)["window_s"] == 9.0
    assert gpu_train.steady([None, *stamps[1:]], 2, None)["warmup_s"] is None
    assert gpu_train.steady(stamps, warmup=5, step_tokens=None)["timed_steps"] == 0


def test_the_mlx_trainer_is_stamped_at_its_start_and_after_every_update(tmp_path):
    clock = gpu_train.StepClock()
    cfg = MLXCrossEncoderConfig(
        pretrained_path=str(bert_cross_encoder(tmp_path / "bert")),
        output_dir=str(tmp_path / "out"),
        batch_size=8,
        max_steps=5,
        show_progress_bar=False,
    )
    trainer = MLXCrossEncoderTrainer(config=cfg)
    trainer.prepare_model()
    with mx.stream(mx.cpu):
        clock.stamp()
        result = trainer.train(toy_pairs(8), callbacks=[clock.mlx_callback])
    assert result["steps"] == 5
    assert len(clock.stamps) == result["steps"] + 1
    assert clock.stamps == sorted(clock.stamps)
    assert len(result["step_times_s"]) == len(result["step_tokens"]) == 5
    assert sum(result["step_tokens"]) == result["train_tokens"]
    # each update's own clock (inside the trainer) lies within the stamps around it
    gaps = [b - a for a, b in zip(clock.stamps, clock.stamps[1:])]
    assert all(t <= g for t, g in zip(result["step_times_s"], gaps))
    st = gpu_train.steady(clock.stamps, 2, result["step_tokens"])
    assert st["timed_steps"] == 3
    assert st["window_tokens"] == sum(result["step_tokens"][2:])
