"""Every encoder architecture exports to a Hugging Face directory that transformers and sentence-transformers load
with the MLX scores; the export names and LoRA targets come from the model's own file."""

from __future__ import annotations

import json

import builders
import mlx.core as mx
import numpy as np
import pytest
import torch
from safetensors import safe_open
from sentence_transformers import CrossEncoder
from transformers import AutoModelForSequenceClassification, AutoTokenizer

import mlx_cross_encoder  # noqa: F401
from mlx_cross_encoder import MLXCrossEncoder
from mlx_cross_encoder.training.export import export_hf
from mlx_cross_encoder.training.lora import setup_lora

ARCHITECTURES = {
    "bert": (builders.bert_cross_encoder, dict(initializer_range=0.2)),
    "xlm_roberta": (builders.xlm_roberta_cross_encoder, dict(initializer_range=0.2)),
    "modernbert": (builders.modernbert_cross_encoder, dict(initializer_range=0.2, classifier_pooling="mean")),
}
#: the Linear layers each architecture's default LoRA targets must reach (transformers' module names)
EXPECTED_LORA_LINEARS = {
    "bert": {"query", "key", "value", "dense"},
    "xlm_roberta": {"query", "key", "value", "dense"},
    "modernbert": {"Wqkv", "Wo", "Wi"},
}


def reference_logits(directory, pairs) -> np.ndarray:
    tok = AutoTokenizer.from_pretrained(directory)
    model = AutoModelForSequenceClassification.from_pretrained(directory, dtype=torch.float32).eval()
    q, d = zip(*pairs)
    enc = tok(list(q), list(d), padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.no_grad():
        return model(**enc).logits[:, 0].numpy()


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_lora_adapted_model_exports_with_the_same_scores(arch, tmp_path):
    build, config = ARCHITECTURES[arch]
    source = build(tmp_path / "source", seed=4, **config)
    pairs = builders.pairs(12)
    encoder = MLXCrossEncoder(source, max_length=128)
    before = encoder.predict(pairs, activation_fn="identity")

    adapter = setup_lora(encoder.model, rank=4, alpha=8)  # default targets: the model file's lora_targets
    leaves = {path.rsplit(".", 1)[-1] for path in adapter["lora_parameters"]["keys"]}
    assert leaves == EXPECTED_LORA_LINEARS[arch]
    rng = np.random.default_rng(0)
    for _, module in encoder.model.named_modules():
        if hasattr(module, "lora_b"):  # LoRA starts as the identity; a random B makes it change the scores
            module.lora_b = mx.array(rng.normal(0, 0.05, module.lora_b.shape).astype(np.float32))
    mlx_scores = encoder.predict(pairs, activation_fn="identity")
    assert np.abs(mlx_scores - before).max() > 1e-3

    out = export_hf(encoder, tmp_path / "export")
    with safe_open(str(out / "model.safetensors"), "np") as f:
        exported = set(f.keys())
    with safe_open(str(source / "model.safetensors"), "np") as f:
        original = {k for k in f.keys() if not k.endswith(("position_ids", "inv_freq"))}
    assert exported == original  # transformers' names, nothing missing, no LoRA tensors

    np.testing.assert_allclose(reference_logits(out, pairs), mlx_scores, rtol=0, atol=1e-4)
    st = CrossEncoder(str(out), device="cpu", activation_fn=torch.nn.Identity())
    np.testing.assert_allclose(st.predict(pairs), mlx_scores, rtol=0, atol=1e-4)
    assert json.loads((out / "config.json").read_text())["architectures"] == [encoder.config["architectures"][0]]
    # the exported directory loads back into MLX with the same scores
    np.testing.assert_allclose(MLXCrossEncoder(out).predict(pairs, activation_fn="identity"), mlx_scores, atol=1e-4)
