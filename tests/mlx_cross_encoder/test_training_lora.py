"""LoRA / QLoRA on encoder cross-encoders: what trains, the head saved with the adapter, reload, fuse."""

import json

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from builders import bert_cross_encoder, pairs
from mlx.utils import tree_flatten
from mlx_lm.tuner.lora import LoRALinear
from training_helpers import toy_groups, toy_pairs

import mlx_cross_encoder  # noqa: F401
from mlx_cross_encoder import MLXCrossEncoder
from mlx_cross_encoder.training import MLXCrossEncoderConfig, MLXCrossEncoderTrainer
from mlx_cross_encoder.training.lora import ADAPTER_WEIGHTS


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return bert_cross_encoder(tmp_path_factory.mktemp("bert"), seed=0)


@pytest.fixture(scope="module")
def bert64_dir(tmp_path_factory):
    # hidden 64 / intermediate 128: every encoder Linear has an input width that quantizes (group size 64)
    return bert_cross_encoder(tmp_path_factory.mktemp("bert64"), seed=1, hidden_size=64, intermediate_size=128)


def lora_trainer(model_dir, tmp_path, quantize=None, **overrides):
    cfg = dict(
        output_dir=str(tmp_path / "out"),
        fine_tune_type="lora",
        lora_rank=4,
        lora_alpha=8,
        learning_rate=5e-3,
        batch_size=8,
        num_epochs=4,
        show_progress_bar=False,
        quantize=quantize,
        seed=0,
    )
    cfg.update(overrides)
    return MLXCrossEncoderTrainer(MLXCrossEncoder(model_dir), MLXCrossEncoderConfig(**cfg))


def test_lora_trains_only_adapters_and_the_head(bert_dir, tmp_path):
    trainer = lora_trainer(bert_dir, tmp_path).prepare_model()
    trainable = {k for k, _ in tree_flatten(trainer.model.trainable_parameters())}
    assert {"classifier.weight", "classifier.bias"} <= trainable
    assert all(k.startswith("classifier.") or k.endswith((".lora_a", ".lora_b")) for k in trainable)
    wrapped = [p for p, m in trainer.model.named_modules() if isinstance(m, LoRALinear)]
    # 2 layers x (query, key, value, attention output dense, intermediate dense, output dense) + pooler dense
    assert len(wrapped) == 13 and "bert.pooler.dense" in wrapped
    config = trainer.adapter_config
    assert config["fine_tune_type"] == "lora" and config["num_layers"] == 2
    assert config["lora_parameters"]["scale"] == 2.0 and config["lora_parameters"]["rank"] == 4
    assert config["trainable_modules"] == ["classifier"]


def test_head_is_saved_and_reloaded_with_the_adapter(bert_dir, tmp_path):
    trainer = lora_trainer(bert_dir, tmp_path)
    head_before = np.array(MLXCrossEncoder(bert_dir).model.classifier.weight)
    trainer.train(toy_pairs(4))
    trained = trainer.predict(pairs())
    path = trainer.save_adapter()
    assert not np.allclose(np.array(trainer.model.classifier.weight), head_before)  # the head did train

    saved = mx.load(str(path / ADAPTER_WEIGHTS))
    assert {"classifier.weight", "classifier.bias"} <= set(saved)
    config = json.loads((path / "adapter_config.json").read_text())
    assert config["base_model"] == str(bert_dir) and len(config["lora_parameters"]["keys"]) == 13

    reloaded = MLXCrossEncoder(bert_dir, adapter_path=path)
    np.testing.assert_allclose(reloaded.predict(pairs()), trained, rtol=0, atol=1e-6)

    # without the head tensors, the same LoRA weights give other scores: the head matters
    no_head = tmp_path / "no_head"
    no_head.mkdir()
    mx.save_safetensors(str(no_head / ADAPTER_WEIGHTS), {k: v for k, v in saved.items() if "classifier" not in k})
    (no_head / "adapter_config.json").write_text(json.dumps(config))
    assert np.abs(MLXCrossEncoder(bert_dir, adapter_path=no_head).predict(pairs()) - trained).max() > 1e-3


def test_adapter_that_does_not_fit_is_rejected(bert_dir, bert64_dir, tmp_path):
    path = lora_trainer(bert64_dir, tmp_path).prepare_model().save_adapter()
    with pytest.raises(ValueError, match="does not fit the model"):
        MLXCrossEncoder(bert_dir, adapter_path=path)
    with pytest.raises(FileNotFoundError, match="not an adapter directory"):
        MLXCrossEncoder(bert_dir, adapter_path=tmp_path)


def test_qlora_trains_over_quantized_linears_and_reloads(bert64_dir, tmp_path):
    trainer = lora_trainer(
        bert64_dir,
        tmp_path,
        quantize=4,
        num_epochs=20,
        loss="listwise",
        group_size=4,
        learning_rate=1e-2,
        logging_steps=1,
    )
    trainer.prepare_model()
    bases = [m.linear for _, m in trainer.model.named_modules() if isinstance(m, LoRALinear)]
    assert bases and all(isinstance(b, nn.QuantizedLinear) and b.bits == 4 for b in bases)
    data = toy_groups(8)
    trainer.train(data)
    losses = [r["loss"] for r in trainer.history]
    assert np.mean(losses[-4:]) < 0.2 * np.mean(losses[:4]), losses
    assert trainer.evaluate(data)["ndcg@10"] == pytest.approx(1.0)
    path = trainer.save_adapter()
    assert json.loads((path / "adapter_config.json").read_text())["quantize"] == 4
    reloaded = MLXCrossEncoder(bert64_dir, quantize=4, adapter_path=path)
    np.testing.assert_allclose(reloaded.predict(pairs()), trainer.predict(pairs()), rtol=0, atol=1e-6)


@pytest.mark.parametrize("quantize", [None, 4])
def test_fuse_keeps_the_scores(bert64_dir, tmp_path, quantize):
    trainer = lora_trainer(bert64_dir, tmp_path, quantize=quantize)
    trainer.train(toy_pairs(4))
    before = trainer.predict(pairs())
    assert trainer.fuse(dequantize=quantize is not None) == 13
    assert not any(isinstance(m, (LoRALinear, nn.QuantizedLinear)) for _, m in trainer.model.named_modules())
    # merging rounds differently than computing the low-rank product separately (and 4-bit dequantization
    # happens once instead of inside the matmul)
    np.testing.assert_allclose(trainer.predict(pairs()), before, rtol=0, atol=2e-5)
