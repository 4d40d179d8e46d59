"""The update clocks. The MLX trainer's own (``RunState.step_times``, which ``train_time_s`` and ``tokens_per_s``
sum) leaves checkpoint writes, dev evaluations and callbacks out, and the fast step dispatches no micro-batch ahead
of them (its device time would hide there). benchmarks/gpu_train.py's clock (``train_clock.StepClock``) stamps
the MLX trainer at the end of every update, before its bookkeeping, so the end-of-run checkpoint is outside every
window (torch saves after its clock too); its warm-up-excluded figures leave the first W updates out."""

import statistics
import sys
from pathlib import Path

import mlx_cross_encoder  # noqa: F401  # isort: skip  (loads the optimized BLAS before mlx.core)
import mlx.core as mx
import pytest
from builders import bert_cross_encoder, qwen3_causal_lm
from training_helpers import toy_groups, toy_pairs

from mlx_cross_encoder.training import MLXCrossEncoderConfig, MLXCrossEncoderTrainer
from mlx_cross_encoder.training import trainer as trainer_module
from mlx_cross_encoder.training.compiled_step import COMPILE_ENV_VAR, FLAT_ENV_VAR

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import gpu_train  # noqa: E402
import train_clock  # noqa: E402

SAVE, EVAL, CALLBACK = 1_000.0, 1_000_000.0, 1_000_000_000.0  # what the fake clock jumps in each


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return bert_cross_encoder(tmp_path_factory.mktemp("bert"))


class FakeClock:
    """``time.perf_counter`` of the trainer and of train_clock: one tick per reading, plus a jump inside each
    checkpoint write, dev evaluation and callback (so a clock that counts one of them shows its jump)."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self) -> float:
        self.now += 1.0
        return self.now

    def jumping(self, seconds: float, fn):
        def wrapped(*args, **kwargs):
            self.now += seconds
            return fn(*args, **kwargs)

        return wrapped


def trainer_on_a_fake_clock(bert_dir, tmp_path, monkeypatch, fast: bool, **settings) -> tuple:
    monkeypatch.setenv(COMPILE_ENV_VAR, "0")
    monkeypatch.setenv(FLAT_ENV_VAR, "1" if fast else "0")  # the fast step (the GPU default) or the plain one
    clock = FakeClock()
    fake_time = type("FakeTime", (), {"perf_counter": staticmethod(clock.perf_counter)})
    monkeypatch.setattr(trainer_module, "time", fake_time)
    monkeypatch.setattr(train_clock, "time", fake_time)
    monkeypatch.setattr(trainer_module, "save_checkpoint", clock.jumping(SAVE, trainer_module.save_checkpoint))
    evaluate = MLXCrossEncoderTrainer._evaluate_step
    monkeypatch.setattr(MLXCrossEncoderTrainer, "_evaluate_step", clock.jumping(EVAL, evaluate))
    cfg = MLXCrossEncoderConfig(
        pretrained_path=str(bert_dir), output_dir=str(tmp_path / "out"), show_progress_bar=False, **settings
    )
    return MLXCrossEncoderTrainer(config=cfg).prepare_model(), clock


@pytest.mark.parametrize("fast", [False, True], ids=["plain-step", "fast-step"])
def test_checkpoints_evaluations_and_callbacks_are_outside_the_update_clock(bert_dir, tmp_path, monkeypatch, fast):
    trainer, clock = trainer_on_a_fake_clock(
        bert_dir, tmp_path, monkeypatch, fast, batch_size=8, max_steps=4, save_steps=1, eval_steps=2
    )
    with mx.stream(mx.cpu):
        result = trainer.train(
            toy_pairs(8), toy_groups(2, seed=1), callbacks=[clock.jumping(CALLBACK, lambda tr, rec: None)]
        )
    assert (trainer._compiled is not None) is fast
    assert result["steps"] == 4 and clock.now > 4 * (SAVE + CALLBACK) + 2 * EVAL  # all of them ran
    assert max(result["step_times_s"]) < SAVE  # no update's clock holds a jump
    assert result["train_time_s"] == sum(result["step_times_s"]) < SAVE
    assert result["tokens_per_s"] == pytest.approx(result["train_tokens"] / result["train_time_s"])


def test_the_fast_step_dispatches_no_micro_batch_ahead_of_a_checkpoint(bert_dir, tmp_path, monkeypatch):
    trainer, _ = trainer_on_a_fake_clock(bert_dir, tmp_path, monkeypatch, True, batch_size=8, max_steps=6, save_steps=3)
    accumulated, seen = [], {}
    accumulate = trainer._accumulate
    monkeypatch.setattr(trainer, "_accumulate", lambda *a: accumulated.append(1) or accumulate(*a))
    save = trainer_module.save_checkpoint

    def counting_save(out_dir, model, optimizer, state, **kwargs):
        seen[state["step"]] = len(accumulated)
        return save(out_dir, model, optimizer, state, **kwargs)

    monkeypatch.setattr(trainer_module, "save_checkpoint", counting_save)
    with mx.stream(mx.cpu):  # 16 queries x 4 pairs: 8 micro-batches of 8 in the epoch, 6 updates
        trainer.train(toy_pairs(16), callbacks=[lambda tr, rec: seen.setdefault(-rec["step"], len(accumulated))])
    # one micro-batch per update: when update k's checkpoint is written, exactly k micro-batches were dispatched
    assert {k: v for k, v in seen.items() if k > 0} == {3: 3, 6: 6}
    # elsewhere the next micro-batch is dispatched while the update runs (the fast step's overlap)
    assert [seen[-k] for k in (1, 2, 4, 5)] == [2, 3, 5, 6]


def test_steady_figures_leave_the_warm_up_out():
    # start, then the end of updates 1..5: update seconds 10, 1, 2, 1, 6 and tokens 100, 100, 50, 30, 90
    stamps = [0.0, 10.0, 11.0, 13.0, 14.0, 20.0]
    st = train_clock.steady(stamps, warmup=2, step_tokens=[100, 100, 50, 30, 90])
    timed = [2.0, 1.0, 6.0]  # updates 3, 4, 5
    assert st["timed_steps"] == 3
    assert (st["warmup_s"], st["first_update_s"]) == (11.0, 10.0)
    assert st["window_s"] == sum(timed)
    assert st["mean_step_s"] == pytest.approx(statistics.mean(timed))
    assert (st["median_step_s"], st["min_step_s"], st["max_step_s"]) == (statistics.median(timed), 1.0, 6.0)
    assert st["window_tokens"] == 50 + 30 + 90
    assert st["tokens_per_s"] == pytest.approx(170 / 9)
    # the LLM baseline's loop has no start event: the window is the same, the warm-up's length unknown
    assert train_clock.steady([None, *stamps[1:]], 2, None)["window_s"] == 9.0
    assert train_clock.steady([None, *stamps[1:]], 2, None)["warmup_s"] is None
    assert train_clock.steady(stamps, warmup=5, step_tokens=None)["timed_steps"] == 0


def test_the_mlx_trainer_is_stamped_at_its_start_and_at_each_update_end_before_its_checkpoint(
    bert_dir, tmp_path, monkeypatch
):
    trainer, clock = trainer_on_a_fake_clock(bert_dir, tmp_path, monkeypatch, True, batch_size=8, max_steps=5)
    steps = train_clock.StepClock()
    steps.hook_mlx(trainer)
    with mx.stream(mx.cpu):
        result = trainer.train(toy_pairs(8))
    assert result["steps"] == 5 and len(steps.stamps) == result["steps"] + 1
    assert clock.now > SAVE  # the end-of-run checkpoint was written, after the last stamp
    gaps = [b - a for a, b in zip(steps.stamps, steps.stamps[1:])]
    assert max(gaps) < SAVE
    # each update's own clock (inside the trainer) lies within the stamps around it
    assert all(t <= g for t, g in zip(result["step_times_s"], gaps))
    assert len(result["step_tokens"]) == 5 and sum(result["step_tokens"]) == result["train_tokens"]
    st = train_clock.steady(steps.stamps, 2, result["step_tokens"])
    assert st["timed_steps"] == 3 and st["window_tokens"] == sum(result["step_tokens"][2:])


def test_the_torch_llm_baseline_is_stamped_at_its_start_and_after_every_update(tmp_path):
    """The LLM baseline's loop (harness/train/torch_llm.py) has no Trainer event: its ``run()`` is the start stamp,
    so its warm-up is measured as the other trainers' is."""
    clock = train_clock.StepClock()
    settings = dict(fine_tune_type="lora", lora_rank=4, batch_size=4, max_length=32, max_steps=3)
    try:
        result, _, _ = gpu_train.train_once(
            "torch",
            "llm",
            str(qwen3_causal_lm(tmp_path / "qwen3")),
            toy_pairs(2),
            dict(settings, output_dir=str(tmp_path / "o")),
            "float32",
            clock,
        )
    finally:
        clock.unhook()
    assert result["steps"] == 3 and len(clock.stamps) == 4
    assert None not in clock.stamps and clock.stamps == sorted(clock.stamps)
    assert train_clock.steady(clock.stamps, 1, None)["warmup_s"] is not None
