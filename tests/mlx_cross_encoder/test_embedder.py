"""MLXEmbedder / MLXBiEncoderReranker against sentence-transformers' SentenceTransformer on the same folders."""

from __future__ import annotations

import builders
import numpy as np
import pytest

from harness.localmodels import minilm_package_dir
from mlx_cross_encoder import MLXBiEncoderReranker, MLXEmbedder
from mlx_cross_encoder.errors import ModelLoadError

TEXTS = builders.QUERIES + builders.DOCUMENTS + [builders.long_document(400, seed=1)]  # one text past 256 tokens


@pytest.fixture(scope="module")
def minilm():
    path = minilm_package_dir()
    from sentence_transformers import SentenceTransformer

    return path, SentenceTransformer(str(path), device="cpu")


def test_minilm_embeddings_match_sentence_transformers(minilm):
    path, st = minilm
    mlx = MLXEmbedder(path)
    assert (mlx.pooling, mlx.normalize, mlx.max_length) == ("mean", True, st.max_seq_length)
    got = mlx.encode(TEXTS, batch_size=4)
    want = st.encode(TEXTS, batch_size=4, convert_to_numpy=True)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    np.testing.assert_allclose(mlx.encode(TEXTS[3]), want[3], atol=1e-4, rtol=0)


def test_minilm_rank_matches_sentence_transformers_cosine(minilm):
    path, st = minilm
    reranker = MLXBiEncoderReranker(path)
    query, docs = builders.QUERIES[1], builders.DOCUMENTS + [TEXTS[-1]]
    q = st.encode([query], convert_to_numpy=True)
    d = st.encode(docs, convert_to_numpy=True)
    from sentence_transformers.util import cos_sim

    want = cos_sim(q, d).numpy()[0]
    got = reranker.predict([(query, doc) for doc in docs], batch_size=3)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    ranked = reranker.rank(query, docs, top_k=5, return_documents=True)
    assert [r["corpus_id"] for r in ranked] == np.argsort(-want, kind="stable")[:5].tolist()
    assert ranked[0]["text"] == docs[ranked[0]["corpus_id"]]
    assert np.isclose(reranker.predict((query, docs[0])), want[0], atol=1e-4)


def test_cls_pooling_folder_matches_sentence_transformers(tmp_path):
    from sentence_transformers import SentenceTransformer, models

    bert = builders.bert_cross_encoder(tmp_path / "bert", seed=3)
    encoder = models.Transformer(str(bert), max_seq_length=64)
    pooling = models.Pooling(encoder.get_embedding_dimension(), pooling_mode="cls")
    st = SentenceTransformer(modules=[encoder, pooling], device="cpu")
    st.save(str(tmp_path / "st"))
    mlx = MLXEmbedder(tmp_path / "st")  # pooling, normalization and max_length come from the folder's files
    assert (mlx.pooling, mlx.normalize, mlx.max_length) == ("cls", False, 64)
    texts = TEXTS[:-1] + [builders.long_document(100, seed=2)]
    np.testing.assert_allclose(
        mlx.encode(texts, batch_size=3), st.encode(texts, batch_size=3, convert_to_numpy=True), atol=1e-4, rtol=0
    )


def test_unsupported_pooling_mode_names_the_file(tmp_path):
    from sentence_transformers import SentenceTransformer, models

    bert = builders.bert_cross_encoder(tmp_path / "bert", seed=0)
    encoder = models.Transformer(str(bert))
    pooling = models.Pooling(encoder.get_embedding_dimension(), pooling_mode="max")
    SentenceTransformer(modules=[encoder, pooling], device="cpu").save(str(tmp_path / "st"))
    with pytest.raises(ModelLoadError, match=r"1_Pooling/config\.json.*max"):
        MLXEmbedder(tmp_path / "st")
    assert "max" in (tmp_path / "st" / "1_Pooling" / "config.json").read_text()
