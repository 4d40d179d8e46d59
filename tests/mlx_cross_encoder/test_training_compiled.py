"""The fast training step (training/compiled_step.py, the GPU default) makes the updates the plain step makes:
same losses, gradient norms, learning rates and parameters after several updates, for full fine-tuning with
gradient accumulation, clipping and a smaller last batch (all compiled with the flat AdamW and the per-tensor one,
the update alone compiled, nothing compiled with the flat AdamW), LoRA with a grouped loss and dropout, the LLM
reranker trainer, and a resumed run."""

import mlx_cross_encoder  # noqa: F401  # isort: skip  (loads the optimized BLAS before mlx.core)
import threading

import mlx.core as mx
import numpy as np
import pytest
from builders import bert_cross_encoder, qwen3_causal_lm
from mlx.utils import tree_flatten
from training_helpers import toy_groups, toy_pairs

from mlx_cross_encoder.training import (
    MLXCrossEncoderConfig,
    MLXCrossEncoderTrainer,
    Qwen3RerankerConfig,
    Qwen3RerankerTrainer,
    compiled_step,
)
from mlx_cross_encoder.training.compiled_step import COMPILE_ENV_VAR, FLAT_ENV_VAR, compile_enabled


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return bert_cross_encoder(tmp_path_factory.mktemp("bert"), seed=0)


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory):
    return qwen3_causal_lm(tmp_path_factory.mktemp("qwen"))


def encoder_trainer(bert_dir, out, **settings) -> MLXCrossEncoderTrainer:
    """The BERT trainer of these tests: no progress bar, a log line per update, ``settings`` on top."""
    settings = {"show_progress_bar": False, "logging_steps": 1, **settings}
    return MLXCrossEncoderTrainer(
        config=MLXCrossEncoderConfig(pretrained_path=str(bert_dir), output_dir=str(out), **settings)
    )


def run(make_trainer, data, monkeypatch, compiled: bool, flat: bool = True, mode: str = "1"):
    """Train; ``compiled=False``: the plain step, else the fast step with ``mode`` (what is compiled) and ``flat``."""
    monkeypatch.setenv(COMPILE_ENV_VAR, mode if compiled else "0")
    monkeypatch.setenv(FLAT_ENV_VAR, "1" if compiled and flat else "0")
    monkeypatch.setenv("MLX_CROSS_ENCODER_CPU_STREAMS", "1")  # the plain path's stream split is not compared here
    trainer = make_trainer()
    threads = []
    if hasattr(trainer, "encoder"):
        trainer.encoder.length_multiple = 32  # widths as on a GPU: few shapes to trace (each is compiled once)
        tokenize = trainer._tokenize
        trainer._tokenize = lambda pairs: threads.append(threading.current_thread().name) or tokenize(pairs)
    trainer.prepare_model()
    trainer.train(data)
    # the compiled step tokenizes the next micro-batch on its worker thread (the first one on the loop's thread)
    assert any(name.startswith("tokenize") for name in threads) is (compiled and bool(threads))
    assert (trainer._compiled is not None) is compiled
    if compiled:
        assert trainer._compiled.flat is flat  # the flat AdamW (FlatAdam) when on, the per-tensor one when off
        assert trainer._compiled.compiled_parts == compiled_step.COMPILE_MODES[mode]
    records = [r for r in trainer.history if r["type"] == "train"]
    params = {k: np.array(v.astype(mx.float32)) for k, v in tree_flatten(trainer.model.trainable_parameters())}
    return records, params


def assert_same_training(plain, compiled, n_updates: int, atol: float):
    (p_rec, p_par), (c_rec, c_par) = plain, compiled
    assert len(p_rec) == len(c_rec) == n_updates
    for key in ("loss", "grad_norm", "lr"):
        np.testing.assert_allclose([r[key] for r in c_rec], [r[key] for r in p_rec], rtol=1e-5, atol=atol, err_msg=key)
    assert c_par.keys() == p_par.keys()
    moved = max(float(np.abs(c_par[k] - p_par[k]).max()) for k in p_par)
    assert moved <= atol, moved


@pytest.mark.parametrize(
    "mode,flat",
    [("1", True), ("1", False), ("update", True), ("0", True)],
    ids=["all-compiled-flat", "all-compiled-per-tensor", "update-compiled-flat", "eager-flat"],
)
def test_compiled_full_fine_tuning_equals_the_plain_step(bert_dir, tmp_path, monkeypatch, mode, flat):
    def make():
        return encoder_trainer(
            bert_dir,
            tmp_path / "out",
            learning_rate=5e-3,
            batch_size=5,  # 32 pairs: the epoch's last micro-batch has 2
            gradient_accumulation_steps=2,
            num_epochs=2,
            max_grad_norm=0.5,  # clipping active
            warmup_ratio=0.2,
            seed=3,
        )

    with mx.stream(mx.cpu):
        plain = run(make, toy_pairs(8), monkeypatch, compiled=False)
        compiled = run(make, toy_pairs(8), monkeypatch, compiled=True, flat=flat, mode=mode)
    assert_same_training(plain, compiled, n_updates=8, atol=2e-5)


def test_compiled_lora_listwise_equals_the_plain_step(bert_dir, tmp_path, monkeypatch):
    def make():
        return encoder_trainer(
            bert_dir,
            tmp_path / "out",
            fine_tune_type="lora",
            lora_rank=4,
            lora_dropout=0.1,  # dropout: the compiled step draws from the same seeded generator
            loss="listwise",
            group_size=4,
            learning_rate=1e-2,
            batch_size=2,
            num_epochs=2,
            seed=5,
        )

    with mx.stream(mx.cpu):
        plain = run(make, toy_groups(6, n_neg=3), monkeypatch, compiled=False)
        compiled = run(make, toy_groups(6, n_neg=3), monkeypatch, compiled=True)
    assert_same_training(plain, compiled, n_updates=6, atol=2e-5)


def test_compiled_llm_lora_equals_the_plain_step(qwen_dir, tmp_path, monkeypatch):
    def make():
        cfg = Qwen3RerankerConfig(
            model_name=str(qwen_dir),
            output_dir=str(tmp_path / "out"),
            lora_rank=4,
            learning_rate=1e-2,
            batch_size=4,
            max_steps=4,
            max_length=64,
            show_progress_bar=False,
            logging_steps=1,
            seed=1,
        )
        return Qwen3RerankerTrainer(cfg)

    with mx.stream(mx.cpu):
        plain = run(make, toy_pairs(4), monkeypatch, compiled=False)
        compiled = run(make, toy_pairs(4), monkeypatch, compiled=True)
    assert_same_training(plain, compiled, n_updates=4, atol=5e-5)


def test_compile_switch(monkeypatch):
    gpu = mx.default_device().type == mx.gpu
    monkeypatch.setenv(COMPILE_ENV_VAR, "auto")
    monkeypatch.setenv(FLAT_ENV_VAR, "auto")
    assert compiled_step.compile_mode() == (False, False)  # by default nothing is compiled: NVRTC on CUDA
    assert compile_enabled() is gpu  # the flat AdamW on a GPU, the plain step on the CPU
    monkeypatch.setenv(COMPILE_ENV_VAR, "0")
    monkeypatch.setenv(FLAT_ENV_VAR, "0")
    assert compile_enabled() is False
    monkeypatch.setenv(FLAT_ENV_VAR, "1")
    assert compile_enabled() is True
    monkeypatch.setenv(COMPILE_ENV_VAR, "update")
    assert compiled_step.compile_mode() == (False, True)
    monkeypatch.setenv(COMPILE_ENV_VAR, "1")
    assert compiled_step.compile_mode() == (True, True)
    monkeypatch.setenv(COMPILE_ENV_VAR, "sometimes")
    with pytest.raises(ValueError, match=COMPILE_ENV_VAR):
        compile_enabled()
    monkeypatch.setenv(FLAT_ENV_VAR, "yes")
    with pytest.raises(ValueError, match=FLAT_ENV_VAR):
        compiled_step.flat_adam_enabled()
    assert compiled_step.CompiledStep  # the module the trainer uses


def test_the_infonce_trainer_follows_the_same_compile_switch(monkeypatch):
    """InfoNCESettings.compile_step None reads MLX_CROSS_ENCODER_TRAIN_COMPILE with compile_mode's rule: compiled
    for "1" (the whole step), not for "auto"/"0"/"update", an unknown value is an error naming the variable."""
    from mlx_cross_encoder.training.infonce import InfoNCESettings

    for value, compiled in [("auto", False), ("0", False), ("update", False), ("1", True)]:
        monkeypatch.setenv(COMPILE_ENV_VAR, value)
        assert InfoNCESettings().resolved_speed() == (1, compiled), value
        assert InfoNCESettings(compile_step=not compiled).resolved_speed()[1] is not compiled  # set explicitly
    monkeypatch.setenv(COMPILE_ENV_VAR, "true")
    with pytest.raises(ValueError, match=COMPILE_ENV_VAR):
        InfoNCESettings().resolved_speed()


def test_llm_training_scores_ignore_right_padding(qwen_dir, tmp_path):
    """On a GPU the LLM trainer pads widths to a multiple of 32 (few shapes to trace): the padding is behind each
    row's last token, so the training scores are those of the exact width."""
    with mx.stream(mx.cpu):
        cfg = Qwen3RerankerConfig(model_name=str(qwen_dir), output_dir=str(tmp_path / "o"), show_progress_bar=False)
        trainer = Qwen3RerankerTrainer(cfg).prepare_model()
        pairs = [(r["query"], r["document"]) for r in toy_pairs(2)][:5]
        (tokens, last), _ = trainer._encode(pairs)
        pad = mx.full((tokens.shape[0], 32 - tokens.shape[1] % 32), trainer.reranker.pad_token_id, dtype=tokens.dtype)
        exact = np.array(trainer._scores((tokens, last)))
        wide = np.array(trainer._scores((mx.concatenate([tokens, pad], axis=1), last)))
    np.testing.assert_allclose(wide, exact, rtol=0, atol=1e-5)


def test_compiled_training_resumes_exactly(bert_dir, tmp_path, monkeypatch):
    """The flat AdamW keeps the model's tensors and the optimizer's moments as views of its vectors: a checkpoint
    taken mid-run holds them, and a resumed compiled run makes the updates of the uninterrupted one."""
    monkeypatch.setenv(COMPILE_ENV_VAR, "1")
    monkeypatch.setenv(FLAT_ENV_VAR, "1")

    def train(out, resume=False):
        trainer = encoder_trainer(
            bert_dir,
            out,
            learning_rate=5e-3,
            batch_size=5,
            max_steps=6,
            save_steps=3,
            seed=4,
            resume_from_checkpoint=resume,
        )
        trainer.encoder.length_multiple = 32
        trainer.prepare_model()
        trainer.train(toy_pairs(8))
        assert trainer._compiled is not None and trainer._compiled.flat
        return {k: np.array(v) for k, v in tree_flatten(trainer.model.trainable_parameters())}

    with mx.stream(mx.cpu):
        whole = train(tmp_path / "whole")
        step3 = next((tmp_path / "whole" / "checkpoints").glob("step-*3"))
        resumed = train(tmp_path / "resumed", resume=str(step3))
    assert whole.keys() == resumed.keys()
    assert max(float(np.abs(whole[k] - resumed[k]).max()) for k in whole) <= 1e-6
