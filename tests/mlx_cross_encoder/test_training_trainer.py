"""The MLX training loop on a tiny BERT cross-encoder: learning, accumulation, resume, evaluation, logging."""

import json
import math

import mlx_cross_encoder  # noqa: F401  # isort: skip  (loads the optimized BLAS before mlx.core)
import mlx.core as mx
import numpy as np
import pytest
from builders import bert_cross_encoder
from mlx.utils import tree_flatten
from training_helpers import toy_groups, toy_pairs

from mlx_cross_encoder import MLXCrossEncoder
from mlx_cross_encoder.training import MLXCrossEncoderConfig, MLXCrossEncoderTrainer
from mlx_cross_encoder.training.checkpoint import list_checkpoints
from mlx_cross_encoder.training.schedule import lr_at


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return bert_cross_encoder(tmp_path_factory.mktemp("bert"), seed=0)


def make_trainer(bert_dir, tmp_path, **overrides):
    cfg = dict(
        output_dir=str(tmp_path / "out"),
        learning_rate=5e-3,
        batch_size=8,
        num_epochs=1,
        show_progress_bar=False,
        logging_steps=1,
        seed=3,
    )
    cfg.update(overrides)
    return MLXCrossEncoderTrainer(MLXCrossEncoder(bert_dir), MLXCrossEncoderConfig(**cfg))


def params(trainer):
    return {k: np.array(v) for k, v in tree_flatten(trainer.model.parameters())}


def assert_params_close(a, b, atol):
    assert a.keys() == b.keys()
    worst = max(float(np.abs(a[k] - b[k]).max()) for k in a)
    assert worst <= atol, worst


@pytest.mark.parametrize("loss", ["bce", "listwise"])
def test_loss_decreases_and_train_ranking_becomes_perfect(bert_dir, tmp_path, loss):
    data = toy_pairs(8) if loss == "bce" else toy_groups(8)
    trainer = make_trainer(bert_dir, tmp_path, loss=loss, group_size=4, num_epochs=20, warmup_ratio=0.1)
    trainer.prepare_model()
    before = trainer.evaluate(data)["ndcg@10"]
    result = trainer.train(data)
    losses = [r["loss"] for r in trainer.history if r["type"] == "train"]
    assert result["steps"] == len(losses) == math.ceil((32 if loss == "bce" else 8) / 8) * 20
    assert np.mean(losses[-4:]) < 0.2 * np.mean(losses[:4])
    after = trainer.evaluate(data)["ndcg@10"]  # the training rankings, learnt
    assert before < 0.9 and after == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("fine_tune_type", "big_batch", "micro", "accum", "updates"),
    [
        ("full", 8, 2, 4, [8, 8, 4]),  # micro-batches 2+2+2+2, 2+2+2+2, 2+2
        ("lora", 12, 3, 4, [12, 8]),  # micro-batches 3+3+3+3, then 3+3+2: unequal sizes within one update
    ],
)
def test_accumulated_small_batches_equal_one_large_batch(
    bert_dir, tmp_path, fine_tune_type, big_batch, micro, accum, updates
):
    data = toy_pairs(5)  # 20 pairs
    common = dict(fine_tune_type=fine_tune_type, num_epochs=2, max_grad_norm=0.5, warmup_steps=2, lr_scheduler="cosine")
    big = make_trainer(bert_dir, tmp_path / "big", batch_size=big_batch, **common)
    small = make_trainer(bert_dir, tmp_path / "small", batch_size=micro, gradient_accumulation_steps=accum, **common)
    start = params(big.prepare_model())
    big.train(data)
    small.train(data)
    assert [r["loss"] for r in big.history] == pytest.approx([r["loss"] for r in small.history], rel=1e-5)
    assert [r["grad_norm"] for r in big.history] == pytest.approx([r["grad_norm"] for r in small.history], rel=1e-4)
    assert len(big.history) == 2 * len(updates)
    after_big, after_small = params(big), params(small)
    assert_params_close(after_big, after_small, atol=2e-6)
    moved = max(float(np.abs(after_big[k] - start[k]).max()) for k in start)
    assert moved > 1e-3  # the comparison is about a real update, not two untouched models


class Interrupt(Exception):
    pass


def test_lr_schedule_warmup_then_decay():
    assert [lr_at(s, 1.0, 10, 4, "linear") for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_at(4, 1.0, 10, 4, "linear") == 1.0 and lr_at(7, 1.0, 10, 4, "linear") == pytest.approx(0.5)
    assert lr_at(7, 1.0, 10, 4, "cosine") == pytest.approx(0.5)
    assert lr_at(5, 1.0, 10, 4, "cosine") == pytest.approx(0.5 * (1 + math.cos(math.pi / 6)))
    assert lr_at(9, 1.0, 10, 0, "constant") == 1.0


def test_the_optimizer_uses_the_scheduled_learning_rates(bert_dir, tmp_path):
    trainer = make_trainer(bert_dir, tmp_path, batch_size=4, num_epochs=2, warmup_steps=3, learning_rate=1e-3)
    result = trainer.train(toy_pairs(4))  # 16 pairs: 4 updates per epoch
    lrs = [r["lr"] for r in trainer.history]  # read from the optimizer after each update
    assert result["steps"] == 8
    # warmup over 3 updates (no zero-lr update), then linear decay to 0 over the remaining 5
    assert lrs == pytest.approx([1e-3 / 3, 2e-3 / 3, 1e-3, 1e-3, 0.8e-3, 0.6e-3, 0.4e-3, 0.2e-3], rel=1e-6)


def test_gradient_clipping_bounds_the_update(bert_dir, tmp_path):
    # the logged norm is the pre-clipping global norm; clipping to a tiny norm rescales each update's gradient
    # by a different factor, which changes Adam's moment mix from the second update on
    data = toy_pairs(2)
    a = make_trainer(bert_dir, tmp_path / "a", max_grad_norm=None, lr_scheduler="constant", num_epochs=2)
    b = make_trainer(bert_dir, tmp_path / "b", max_grad_norm=1e-3, lr_scheduler="constant", num_epochs=2)
    a.train(data)
    b.train(data)
    assert all(r["grad_norm"] is None for r in a.history)
    assert all(r["grad_norm"] > 1e-3 for r in b.history)
    assert a.history[0]["loss"] == pytest.approx(b.history[0]["loss"])
    pa, pb = params(a), params(b)
    assert max(float(np.abs(pa[k] - pb[k]).max()) for k in pa) > 1e-6


def test_eval_best_checkpoint_and_early_stopping(bert_dir, tmp_path):
    seen = []

    def metric_fn(run, qrels):  # a metric that peaks at the 2nd evaluation, then gets worse
        seen.append((run, qrels))
        return {"ndcg@10": [0.2, 0.9, 0.5, 0.4, 0.3, 0.1][len(seen) - 1]}

    trainer = make_trainer(
        bert_dir, tmp_path, batch_size=4, num_epochs=5, eval_steps=2, early_stopping_patience=2, save_total_limit=1
    )
    result = trainer.train(toy_pairs(4), toy_groups(3, seed=1), metric_fn=metric_fn)
    assert len(seen) == 4 and result["stopped_early"] and result["steps"] == 8
    assert result["best_step"] == 4 and result["best_metric"] == 0.9 and result["final_metrics"] == {"ndcg@10": 0.9}
    run, qrels = seen[0]
    assert set(run) == set(qrels) == {"q0", "q1", "q2"} and len(run["q0"]) == 6  # 1 positive + 5 negatives
    best = json.loads((tmp_path / "out" / "best" / "adapter_config.json").read_text())
    assert best["step"] == 4 and best["metrics"] == {"ndcg@10": 0.9}
    # the model at the end is the best checkpoint's
    from mlx_cross_encoder.training.lora import ADAPTER_WEIGHTS

    saved = mx.load(str(tmp_path / "out" / "best" / ADAPTER_WEIGHTS))
    now = dict(tree_flatten(trainer.model.parameters()))
    assert all(np.array_equal(np.array(saved[k]), np.array(now[k])) for k in saved)
    # only complete checkpoints remain, the newest `save_total_limit`, no temporary directories
    assert [p.name for p in list_checkpoints(tmp_path / "out")] == ["step-0000008"]
    leftovers = [p.name for p in (tmp_path / "out").rglob("*") if ".tmp-" in p.name or ".old-" in p.name]
    assert leftovers == []


def test_default_metric_is_ndcg_at_10(bert_dir, tmp_path):
    trainer = make_trainer(bert_dir, tmp_path)
    trainer.prepare_model()
    dev = [{"query": "q", "document": f"doc number {w}", "label": int(w == "two")} for w in ["one", "two", "three"]]
    scores = trainer.predict_scores([("q", d["document"]) for d in dev])
    rank_of_positive = int((scores > scores[1]).sum())  # 0-based
    assert trainer.evaluate(dev)["ndcg@10"] == pytest.approx(1 / math.log2(rank_of_positive + 2))


def test_score_pair_is_sigmoid_of_the_logit(bert_dir, tmp_path):
    trainer = make_trainer(bert_dir, tmp_path)
    raw = float(trainer.predict_scores([("auth flow", "oauth token exchange")])[0])
    assert trainer.score_pair("auth flow", "oauth token exchange") == pytest.approx(1 / (1 + math.exp(-raw)), rel=1e-6)
