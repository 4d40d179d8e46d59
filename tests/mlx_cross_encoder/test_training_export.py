"""A fine-tuned MLX cross-encoder exported to a Hugging Face directory scores the same in sentence-transformers."""

import json

import numpy as np
import pytest
from builders import bert_cross_encoder, pairs
from safetensors import safe_open
from training_helpers import toy_groups

import mlx_cross_encoder  # noqa: F401
from mlx_cross_encoder import MLXCrossEncoder
from mlx_cross_encoder.training import MLXCrossEncoderConfig, MLXCrossEncoderTrainer


@pytest.fixture(scope="module")
def bert64_dir(tmp_path_factory):
    return bert_cross_encoder(tmp_path_factory.mktemp("bert64"), seed=2, hidden_size=64, intermediate_size=128)


def trained(model_dir, tmp_path, **overrides):
    cfg = dict(
        output_dir=str(tmp_path / "out"),
        loss="listwise",
        group_size=4,
        learning_rate=5e-3,
        batch_size=4,
        num_epochs=3,
        show_progress_bar=False,
        lora_rank=4,
        lora_alpha=8,
    )
    cfg.update(overrides)
    trainer = MLXCrossEncoderTrainer(MLXCrossEncoder(model_dir), MLXCrossEncoderConfig(**cfg))
    trainer.train(toy_groups(8))
    return trainer


@pytest.mark.parametrize(
    "setup",
    [dict(fine_tune_type="full"), dict(fine_tune_type="lora"), dict(fine_tune_type="lora", quantize=4)],
    ids=["full", "lora", "qlora"],
)
def test_exported_model_scores_equal_in_sentence_transformers(bert64_dir, tmp_path, setup):
    from sentence_transformers import CrossEncoder

    trainer = trained(bert64_dir, tmp_path, **setup)
    mlx_scores = trainer.predict(pairs())
    base_scores = MLXCrossEncoder(bert64_dir).predict(pairs())
    assert np.abs(mlx_scores - base_scores).max() > 1e-3  # training changed the model: the export must carry that

    out = trainer.export_hf(tmp_path / "export")
    with safe_open(str(out / "model.safetensors"), "np") as f:
        names = set(f.keys())
    with safe_open(str(bert64_dir / "model.safetensors"), "np") as f:
        original = {k for k in f.keys() if not k.endswith("position_ids")}
    assert names == original  # transformers' names, nothing missing, no LoRA/quantization tensors
    config = json.loads((out / "config.json").read_text())
    assert config["sentence_transformers"]["activation_fn"] == "torch.nn.modules.activation.Sigmoid"
    assert (out / "tokenizer.json").is_file()

    st = CrossEncoder(str(out), device="cpu")
    np.testing.assert_allclose(st.predict(pairs()), mlx_scores, rtol=0, atol=1e-4)
    # the trainer's model is untouched by the export (LoRA layers still in place)
    np.testing.assert_allclose(trainer.predict(pairs()), mlx_scores, rtol=0, atol=0)
    # and the export loads back into MLX with the same scores
    np.testing.assert_allclose(MLXCrossEncoder(out).predict(pairs()), mlx_scores, rtol=0, atol=1e-4)
