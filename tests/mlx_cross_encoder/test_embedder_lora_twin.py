"""Decoder embedders trained with LoRA: the MLX InfoNCE trainer against its PyTorch twin (sentence-transformers' MNRL
on a SentenceTransformer with PEFT LoRA on the same modules, harness.train.bi_encoder_torch), and the trained
folders each stack writes (adapters fused) read back by the other stack."""

from __future__ import annotations

import builders
import numpy as np
import pytest

from mlx_cross_encoder.training.infonce import InfoNCEExample, InfoNCESettings, InfoNCETrainer

MAX_LENGTH = 32


def _examples() -> list[InfoNCEExample]:
    return builders.infonce_examples()


@pytest.fixture()
def decoder_folder(tmp_path):
    """A tiny Qwen3 saved by sentence-transformers with last-token pooling + Normalize (a decoder embedding folder)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Normalize, Pooling, Transformer

    folder = builders.qwen3_causal_lm(tmp_path / "qwen3", seed=5)
    encoder = Transformer(str(folder), max_seq_length=MAX_LENGTH)
    modules = [encoder, Pooling(encoder.get_embedding_dimension(), pooling_mode="lasttoken"), Normalize()]
    SentenceTransformer(modules=modules, device="cpu").save(str(tmp_path / "st"))
    return tmp_path / "st"


def test_decoder_lora_matches_the_peft_twin_update_for_update(decoder_folder, tmp_path):
    from sentence_transformers import SentenceTransformer

    from harness.train.bi_encoder_torch import merge_lora, train_sentence_transformer
    from mlx_cross_encoder import MLXEmbedder

    examples, texts = _examples(), builders.DOCUMENTS
    settings = InfoNCESettings(fine_tune="lora", lora_rank=4, lora_alpha=8.0, batch_size=3, epochs=2,
                               learning_rate=3e-2, warmup_ratio=0.25, scale=10.0, seed=2)  # fmt: skip
    mlx = MLXEmbedder(decoder_folder)
    before = mlx.encode(texts)
    trainer = InfoNCETrainer(mlx, settings)
    mine = trainer.train(examples)
    st = SentenceTransformer(str(decoder_folder), device="cpu")
    theirs = train_sentence_transformer(st, examples, settings)

    assert theirs["lora_modules"] == trainer.adapter_config["keys"]  # PEFT wrapped the modules MLX wrapped
    assert theirs["lora_modules"] and all(m.rsplit(".", 1)[1] in ("q_proj", "k_proj", "v_proj", "o_proj")
                                          for m in theirs["lora_modules"])  # fmt: skip
    trainable = [n for n, p in st.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)  # only the adapters train in torch
    assert mine["steps"] == theirs["steps"] >= 4 and mine["tokens"] == theirs["tokens"]
    np.testing.assert_allclose(mine["losses"], theirs["losses"], atol=1e-4, rtol=0)
    after = mlx.encode(texts)
    assert np.abs(after - before).max() > 1e-2  # the adapters moved the embeddings
    np.testing.assert_allclose(after, st.encode(texts, convert_to_numpy=True), atol=1e-4, rtol=0)

    # each stack's saved folder (adapters fused into the weights) loads in the other stack with the same embeddings
    mlx_saved = mlx.save_pretrained(tmp_path / "mlx-trained")
    np.testing.assert_allclose(SentenceTransformer(str(mlx_saved), device="cpu").encode(texts), after, atol=1e-4,
                               rtol=0)  # fmt: skip
    merge_lora(st)
    assert not any("lora_" in n for n, _ in st.named_parameters())
    st.save(str(tmp_path / "torch-trained"))
    np.testing.assert_allclose(MLXEmbedder(tmp_path / "torch-trained").encode(texts), after, atol=1e-4, rtol=0)


def test_encoder_lora_twin_needs_named_targets(tmp_path):
    from sentence_transformers import SentenceTransformer, models

    from harness.train.bi_encoder_torch import train_sentence_transformer

    bert = builders.bert_cross_encoder(tmp_path / "bert", seed=2)
    encoder = models.Transformer(str(bert), max_seq_length=MAX_LENGTH)
    st = SentenceTransformer(modules=[encoder, models.Pooling(encoder.get_embedding_dimension())], device="cpu")
    with pytest.raises(ValueError, match="lora_targets"):
        train_sentence_transformer(st, _examples(), InfoNCESettings(fine_tune="lora", batch_size=3))
