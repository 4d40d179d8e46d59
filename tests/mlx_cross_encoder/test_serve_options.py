"""Request options the server applies: Cohere ``max_tokens_per_doc``, TEI ``raw_scores`` and ``truncate``; and
embedding models (bi-encoders) served on the same routes. References: the in-process rerankers on inputs cut
independently (whole words: every word of ``builders.long_document`` is one token of the tiny tokenizers)."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from builders import DOCUMENTS, QUERIES, bert_cross_encoder, long_document, qwen3_causal_lm

from mlx_cross_encoder import MLXBiEncoderReranker, MLXCrossEncoder, Qwen3Reranker
from mlx_cross_encoder.serve import ServeSettings
from mlx_cross_encoder.serve.models import load_model
from mlx_cross_encoder.serve.testing import running_server

LONG = [long_document(200, seed=s) for s in range(3)]  # 200+ tokens each: over the limits below
MAX_LENGTH = {"bert": 64, "qwen": 192, "embed": 64}  # qwen's counts its ~50-token prompt too


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    from sentence_transformers import SentenceTransformer, models

    bert = bert_cross_encoder(tmp_path_factory.mktemp("opt_bert"), seed=1, initializer_range=0.5)
    qwen = qwen3_causal_lm(tmp_path_factory.mktemp("opt_qwen") / "tiny", seed=0, initializer_range=0.5)
    encoder = models.Transformer(str(bert), max_seq_length=MAX_LENGTH["embed"])
    pooling = models.Pooling(encoder.get_embedding_dimension(), pooling_mode="mean")
    st_dir = tmp_path_factory.mktemp("opt_st")
    SentenceTransformer(modules=[encoder, pooling, models.Normalize()], device="cpu").save(str(st_dir))
    return {"bert": bert, "qwen": qwen, "embed": st_dir}


@pytest.fixture(scope="module")
def server(folders):
    loaders = {
        "bert": lambda: load_model(folders["bert"], max_length=MAX_LENGTH["bert"]),
        "qwen": lambda: load_model(folders["qwen"], max_length=MAX_LENGTH["qwen"]),
        "embed": lambda: load_model(folders["embed"]),
    }
    with running_server(loaders, ServeSettings()) as url:
        yield url


@pytest.fixture(scope="module")
def local(folders):
    return {
        "bert": MLXCrossEncoder(folders["bert"], max_length=MAX_LENGTH["bert"]),
        "qwen": Qwen3Reranker(folders["qwen"], max_length=MAX_LENGTH["qwen"]),
        "embed": MLXBiEncoderReranker(folders["embed"]),
    }


def by_index(results: list[dict], key: str) -> np.ndarray:
    out = np.full(len(results), np.nan)
    out[[r["index"] for r in results]] = [r[key] for r in results]
    return out


def first_tokens(name: str, folders, text: str, n: int) -> str:
    """Reference cut: BERT's WordPiece gives one token per word of these texts (all in its vocabulary); Qwen's
    byte-level BPE decodes its first n tokens back to exactly the text's first characters."""
    if name != "qwen":
        return " ".join(text.split()[:n])
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folders["qwen"])
    return tok.decode(tok(text, add_special_tokens=False)["input_ids"][:n])


@pytest.mark.parametrize("name", ["bert", "qwen", "embed"])
def test_max_tokens_per_doc_scores_the_first_tokens_of_each_document(server, local, folders, name):
    docs, n = DOCUMENTS[:4] + LONG, 6
    body = {"model": name, "query": QUERIES[1], "documents": docs, "max_tokens_per_doc": n}
    got = httpx.post(f"{server}/v2/rerank", json=body, timeout=60).json()["results"]
    cut = [first_tokens(name, folders, d, n) for d in docs]
    assert cut[4] != LONG[0] and cut[4] in LONG[0]
    want = local[name].predict([(QUERIES[1], d) for d in cut])
    np.testing.assert_allclose(by_index(got, "relevance_score"), want, rtol=1e-5, atol=1e-6)
    uncut = local[name].predict([(QUERIES[1], d) for d in docs])
    assert not np.allclose(uncut[4:], want[4:]), "cutting changed no score: the test would not see a missing cut"


@pytest.mark.parametrize("name", ["bert", "qwen"])
def test_tei_raw_scores_are_the_logits(server, local, name):
    body = {"model": name, "query": QUERIES[0], "texts": DOCUMENTS}
    raw = by_index(httpx.post(f"{server}/rerank", json=body | {"raw_scores": True}).json(), "score")
    activated = by_index(httpx.post(f"{server}/rerank", json=body).json(), "score")
    pairs = [(QUERIES[0], d) for d in DOCUMENTS]
    np.testing.assert_allclose(raw, local[name].predict(pairs, activation_fn="identity"), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(activated, local[name].predict(pairs), rtol=1e-6)
    np.testing.assert_allclose(activated, 1 / (1 + np.exp(-raw)), rtol=1e-5)  # TEI: sigmoid unless raw_scores
    assert np.abs(raw - activated).max() > 0.1  # logits and probabilities differ: an ignored flag is seen


def test_raw_scores_of_a_bi_encoder_is_a_clear_400(server):
    r = httpx.post(f"{server}/rerank", json={"model": "embed", "query": "q", "texts": ["a"], "raw_scores": True})
    assert r.status_code == 400 and "no logits" in r.json()["message"]


@pytest.mark.parametrize("name", ["bert", "qwen", "embed"])
def test_tei_truncate_false_refuses_overlong_inputs_and_true_truncates(server, local, name):
    texts = DOCUMENTS[:3] + LONG[:1]
    body = {"model": name, "query": QUERIES[2], "texts": texts}
    refused = httpx.post(f"{server}/rerank", json=body | {"truncate": False})
    assert refused.status_code == 413 and "texts [3] are longer" in refused.json()["message"]
    ok = httpx.post(f"{server}/rerank", json=body | {"truncate": False, "texts": DOCUMENTS[:3]})
    assert ok.status_code == 200
    for truncate in ({"truncate": True}, {}):  # unset: the server's auto_truncate (on by default)
        got = by_index(httpx.post(f"{server}/rerank", json=body | truncate).json(), "score")
        np.testing.assert_allclose(got, local[name].predict([(QUERIES[2], t) for t in texts]), rtol=1e-6)


def test_embedding_model_served_like_in_process_bi_encoder(server, local):
    import cohere

    resp = cohere.ClientV2(base_url=server, api_key="x").rerank(model="embed", query=QUERIES[3], documents=DOCUMENTS)
    want = local["embed"].rank(QUERIES[3], DOCUMENTS)
    assert [r.index for r in resp.results] == [w["corpus_id"] for w in want]
    np.testing.assert_allclose([r.relevance_score for r in resp.results], [w["score"] for w in want], rtol=1e-5)
    cards = httpx.get(f"{server}/v1/models").json()["data"]
    assert [c["kind"] for c in cards] == ["MLXCrossEncoder", "Qwen3Reranker", "MLXBiEncoderReranker"]
