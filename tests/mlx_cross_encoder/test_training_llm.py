"""LoRA / QLoRA / full training of an LLM yes/no reranker (tiny random Qwen3) and reloading its adapter."""

import json

import mlx_cross_encoder  # noqa: F401  # isort: skip  (loads the optimized BLAS before mlx.core)
import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from builders import pairs, qwen3_causal_lm
from training_helpers import toy_groups, toy_pairs

from mlx_cross_encoder import Qwen3RerankerConfig, Qwen3RerankerTrainer
from mlx_cross_encoder.llm_reranker import Qwen3Reranker


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory):
    return qwen3_causal_lm(tmp_path_factory.mktemp("qwen3"), seed=0)


def make_trainer(model_dir, tmp_path, **overrides):
    cfg = dict(
        model_name=str(model_dir),
        output_dir=str(tmp_path / "out"),
        lora_rank=4,
        lora_alpha=8,
        batch_size=4,
        learning_rate=5e-3,
        num_epochs=1,
        max_length=256,
        show_progress_bar=False,
        logging_steps=1,
    )
    cfg.update(overrides)
    return Qwen3RerankerTrainer(Qwen3RerankerConfig(**cfg))


def test_training_score_is_the_rerankers_yes_minus_no_logit(qwen_dir, tmp_path):
    trainer = make_trainer(qwen_dir, tmp_path).prepare_model()
    reference = Qwen3Reranker(qwen_dir, max_length=256)
    logits = reference.predict_logits(pairs())  # [no, yes] from the reranker's own (prefix-cached) path
    np.testing.assert_allclose(trainer.predict_scores(pairs()), logits[:, 1] - logits[:, 0], rtol=0, atol=1e-4)


@pytest.mark.parametrize("loss", ["bce", "listwise"])
def test_lora_learns_and_the_adapter_reloads_in_qwen3reranker_and_mlx_lm(qwen_dir, tmp_path, loss):
    data = toy_pairs(4) if loss == "bce" else toy_groups(8)
    # bce: 1 positive in 4 pairs, weighted up as FlagEmbedding-style data usually needs
    trainer = make_trainer(qwen_dir, tmp_path, loss=loss, group_size=4, num_epochs=10, pos_weight=3.0)
    trainer.prepare_model()
    trainable = [k for k, _ in mlx_trainable(trainer)]
    assert trainable and all(k.endswith((".lora_a", ".lora_b")) for k in trainable)
    trainer.train(data)
    losses = [r["loss"] for r in trainer.history]
    assert np.mean(losses[-4:]) < 0.5 * np.mean(losses[:4]), losses  # the last epoch vs the first
    assert trainer.evaluate(data)["ndcg@10"] == pytest.approx(1.0)

    trained = trainer.predict(pairs(), activation_fn="identity")
    np.testing.assert_allclose(trainer.predict_scores(pairs()), trained, rtol=0, atol=1e-4)
    path = trainer.save_adapter()
    config = json.loads((path / "adapter_config.json").read_text())
    assert config["fine_tune_type"] == "lora" and config["num_layers"] == 2 and config["model"] == str(qwen_dir)
    assert config["lora_parameters"]["scale"] == 2.0 and "self_attn.q_proj" in config["lora_parameters"]["keys"]

    reloaded = Qwen3Reranker(qwen_dir, adapter_path=path, max_length=256)
    np.testing.assert_allclose(reloaded.predict(pairs(), activation_fn="identity"), trained, rtol=0, atol=1e-5)
    base = Qwen3Reranker(qwen_dir, max_length=256).predict(pairs(), activation_fn="identity")
    assert np.abs(base - trained).max() > 1e-2

    from mlx_lm import load

    model, _ = load(str(qwen_dir), adapter_path=str(path))
    ids = reloaded.tokenize(pairs(3))
    for row, x in enumerate(ids):
        logits = model(mx.array([x]))[0, -1]
        margin = (logits[reloaded.yes_id] - logits[reloaded.no_id]).item()
        assert margin == pytest.approx(float(trained[row]), abs=1e-4)


def mlx_trainable(trainer):
    from mlx.utils import tree_flatten

    return tree_flatten(trainer.model.trainable_parameters())


def test_qlora_on_an_mlx_quantized_checkpoint(qwen_dir, tmp_path):
    from mlx_lm import convert

    quantized = tmp_path / "q4"
    convert(str(qwen_dir), mlx_path=str(quantized), quantize=True, q_bits=4, q_group_size=64)
    trainer = make_trainer(quantized, tmp_path, loss="listwise", group_size=4, num_epochs=10)
    trainer.prepare_model()
    bases = [m.linear for _, m in trainer.model.named_modules() if hasattr(m, "lora_a")]
    # Qwen3Reranker may expand 4-bit weights to float on CPU (same values, faster matmuls): LoRA then trains over
    # the dequantized 4-bit weights, and the reload below expands them the same way
    expected = nn.Linear if getattr(trainer.reranker, "dequantized", False) else nn.QuantizedLinear
    assert len(bases) == 14 and all(type(b) is expected for b in bases)
    trainer.train(toy_groups(8))
    assert trainer.evaluate(toy_groups(8))["ndcg@10"] == pytest.approx(1.0)
    trained = trainer.predict(pairs(), activation_fn="identity")
    reloaded = Qwen3Reranker(quantized, adapter_path=trainer.save_adapter(), max_length=256)
    np.testing.assert_allclose(reloaded.predict(pairs(), activation_fn="identity"), trained, rtol=0, atol=1e-5)


def test_in_memory_quantized_blocks_keep_embeddings_and_head(qwen_dir, tmp_path):
    trainer = make_trainer(qwen_dir, tmp_path, quantize=4).prepare_model()
    modules = dict(trainer.model.named_modules())
    assert isinstance(modules["model.embed_tokens"], nn.Embedding)
    assert isinstance(modules["model.layers.0.self_attn.q_proj"].linear, nn.QuantizedLinear)
    # the reranker's scoring path (two answer rows of the float head) and the training path still agree
    np.testing.assert_allclose(
        trainer.predict_scores(pairs()), trainer.predict(pairs(), activation_fn="identity"), rtol=0, atol=1e-4
    )


def test_full_fine_tuning_saves_every_trained_tensor(qwen_dir, tmp_path):
    trainer = make_trainer(qwen_dir, tmp_path, fine_tune_type="full", learning_rate=1e-3, num_epochs=2)
    trainer.train(toy_groups(4))
    trained = trainer.predict(pairs(), activation_fn="identity")
    np.testing.assert_allclose(trainer.predict_scores(pairs()), trained, rtol=0, atol=1e-4)
    path = trainer.save_adapter()
    assert json.loads((path / "adapter_config.json").read_text())["fine_tune_type"] == "full"
    reloaded = Qwen3Reranker(qwen_dir, adapter_path=path, max_length=256)
    np.testing.assert_allclose(reloaded.predict(pairs(), activation_fn="identity"), trained, rtol=0, atol=1e-5)
