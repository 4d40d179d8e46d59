"""Harness backends for bi-encoder (embedding) folders: the kind is inferred from the folder, both backends load
their bi-encoder module through the registry, and score as sentence-transformers' cosine on the same folder."""

from __future__ import annotations

import json
from types import SimpleNamespace

import builders
import numpy as np
import pytest

from harness import backends
from harness.backends.bi_encoder import model_kind
from harness.backends.registry import BACKENDS

MAX_LENGTH = 24


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    from sentence_transformers import SentenceTransformer, models

    root = tmp_path_factory.mktemp("bi")
    bert = builders.bert_cross_encoder(root / "bert", seed=5)
    encoder = models.Transformer(str(bert), max_seq_length=MAX_LENGTH)
    pooling = models.Pooling(encoder.get_embedding_dimension(), pooling_mode="mean")
    st = SentenceTransformer(modules=[encoder, pooling, models.Normalize()], device="cpu")
    st.save(str(root / "st"))
    # as older sentence-transformers folders (all-MiniLM-L6-v2) say it: max_seq_length in sentence_bert_config.json,
    # a larger tokenizer model_max_length that SentenceTransformer does not truncate at
    config = json.loads((root / "st" / "tokenizer_config.json").read_text())
    (root / "st" / "tokenizer_config.json").write_text(json.dumps({**config, "model_max_length": 512}))
    (root / "st" / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": MAX_LENGTH}))
    return root / "st", bert


def spec(backend: str, **kw):
    fields = dict(name=backend, backend=backend, model="x", dtype=None, batch_size=4, max_length=None)
    return SimpleNamespace(**{**fields, "device": "cpu", "instruction": None, "options": {}, **kw})


PAIRS = [(builders.QUERIES[0], d) for d in builders.DOCUMENTS[:4]] + [
    (builders.QUERIES[1], builders.long_document(60, seed=4)),  # past MAX_LENGTH: truncated
    (builders.QUERIES[1], builders.DOCUMENTS[0]),
]


def reference(folder):
    """sentence-transformers on the folder, cosine by its own util (independent of the harness)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.util import cos_sim

    st = SentenceTransformer(str(folder), device="cpu")
    assert st.max_seq_length == MAX_LENGTH
    q = st.encode([q for q, _ in PAIRS], convert_to_tensor=True)
    d = st.encode([d for _, d in PAIRS], convert_to_tensor=True)
    scores = cos_sim(q, d).diagonal().numpy()
    lengths = [int(st.preprocess([t])["attention_mask"].sum()) for pair in PAIRS for t in pair]
    return scores, np.asarray(lengths).reshape(-1, 2).sum(axis=1)


@pytest.mark.parametrize("backend", ["mlx", "torch"])
def test_bi_encoder_folder_scores_as_sentence_transformers_cosine(folders, backend):
    st_dir, _ = folders
    assert model_kind(st_dir) == "bi_encoder"
    max_length, source = backends.resolve_max_length(st_dir, None)
    assert (max_length, source) == (MAX_LENGTH, "sentence-transformers")  # the folder's max_seq_length
    # as the worker calls it: the backend's own module from the parent, switched by the registry's kinds
    loaded = backends.load_backend(spec(backend), max_length, st_dir, BACKENDS[backend].module)
    assert type(loaded).__module__ == BACKENDS[backend].kinds["bi_encoder"]
    want_scores, want_tokens = reference(st_dir)
    got = loaded.predict(PAIRS, 4)
    assert got.dtype == np.float32 and got.shape == (len(PAIRS),)
    np.testing.assert_allclose(got, want_scores, atol=1e-4, rtol=0)
    np.testing.assert_array_equal(loaded.token_counts(PAIRS), want_tokens)
    assert loaded.token_counts(PAIRS)[4] - len(builders.QUERIES[1].split()) > MAX_LENGTH - 4  # truncated doc
    system = loaded.describe()
    assert (system["kind"], system["max_length"], system["dtype"]) == ("bi_encoder", MAX_LENGTH, "float32")


def test_cross_encoder_folder_keeps_the_cross_encoder_backend(folders):
    _, bert = folders
    assert model_kind(bert) is None
    loaded = backends.load_backend(spec("mlx"), 32, bert)
    assert type(loaded).__module__ == BACKENDS["mlx"].module


def test_bi_encoder_refuses_options_and_instruction(folders):
    st_dir, _ = folders
    with pytest.raises(backends.BackendError, match="unknown option"):
        backends.load_backend(spec("torch", options={"activation_fn": "sigmoid"}), MAX_LENGTH, st_dir)
    with pytest.raises(backends.BackendError, match="instruction"):
        backends.load_backend(spec("mlx", instruction="Judge"), MAX_LENGTH, st_dir)
