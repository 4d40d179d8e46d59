"""Build small checkpoints on disk with transformers (random init, fixed seed) for parity tests.

Nothing here downloads: tokenizers are built with ``tokenizers`` from a fixed vocabulary.
"""

from __future__ import annotations

import re
from pathlib import Path

from harness.localshapes import QWEN3_RERANKER_06B_SHAPE

TEXT = """
the a an of to in and or is are was were be been for on with as by at from that this these those it its
what how why when where who which query document passage answer relevant irrelevant search retrieve rank
token exchange flow oauth authorization code access jwt signed api auth css grid layout two dimensional
positioning machine learning model apple silicon metal memory speed fast slow neural network transformer
attention layer embedding vector database index bm25 dense sparse hybrid rerank rerankers score scores
cat dog house river mountain city country music film book history science physics chemistry biology
water fire earth air light dark night day year month week time people person world life health disease
treatment drug cause effect symptom doctor hospital patient study result results data method methods
""".split()

QUERIES = [
    "what is oauth authorization code flow",
    "how do rerankers score passages",
    "cause of disease",
    "apple silicon metal speed",
    "bm25",
]
DOCUMENTS = [
    "oauth authorization code flow exchanges code for access token",
    "css grid layout provides two dimensional positioning",
    "jwt tokens are signed for api auth",
    "the reranker scores each passage for the query with a transformer model and attention layers "
    "which is slow but relevant results are ranked first in the search index of the database",
    "river",
    "a study of drug treatment results in patients with the disease and its symptom",
    "the cat and the dog",
    "dense and sparse hybrid retrieval with bm25 and embedding vector index " * 3,
]


def pairs(n: int | None = None) -> list[tuple[str, str]]:
    """Padding-heavy mix of short and long (query, document) pairs."""
    out = [(q, d) for q in QUERIES for d in DOCUMENTS]
    return out[:n] if n else out


def vocabulary() -> list[str]:
    words = sorted(set(TEXT) | {w for t in QUERIES + DOCUMENTS for w in re.findall(r"\w+", t)})
    return ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words + [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"]


def save_bert_tokenizer(directory: Path, model_max_length: int = 512) -> None:
    """A WordPiece tokenizer with BERT's pair template ([CLS] A [SEP] B [SEP], token types 0/1)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertTokenizerFast

    vocab = {tok: i for i, tok in enumerate(vocabulary())}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    cls, sep = vocab["[CLS]"], vocab["[SEP]"]
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    fast = BertTokenizerFast(tokenizer_object=tok, model_max_length=model_max_length)
    fast.save_pretrained(directory)


def bert_cross_encoder(directory: Path, seed: int = 0, num_labels: int = 1, **config) -> Path:
    """Random-init ``BertForSequenceClassification`` + tokenizer saved as safetensors."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    directory = Path(directory)
    defaults = dict(
        vocab_size=len(vocabulary()),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=num_labels,
    )
    torch.manual_seed(seed)
    model = BertForSequenceClassification(BertConfig(**{**defaults, **config}))
    model.eval()
    model.save_pretrained(directory, safe_serialization=True)
    save_bert_tokenizer(directory, model_max_length=defaults["max_position_embeddings"])
    return directory


def words() -> list[str]:
    """The plain words of ``vocabulary()`` (no special tokens, no word pieces)."""
    return [w for w in vocabulary() if not w.startswith(("[", "##"))]


def long_document(n_words: int, seed: int = 0) -> str:
    """A document of ``n_words`` vocabulary words (one token each for the word-level tokenizers below)."""
    import random

    rng = random.Random(seed)
    return " ".join(rng.choice(words()) for _ in range(n_words))


def _save_word_level_tokenizer(
    directory: Path, specials: dict[str, str], vocab: dict[str, int], pair: str, model_max_length: int
) -> None:
    """A lowercasing word-level tokenizer with a pair template, wrapped in ``PreTrainedTokenizerFast`` so that
    transformers / sentence-transformers and mlx_cross_encoder read the same tokenizer.json. Like the real
    XLM-R and ModernBERT tokenizers it returns no token_type_ids."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(vocab, unk_token=specials["unk_token"]))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    bos, eos = specials["cls_token"], specials["sep_token"]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=pair, special_tokens=[(bos, vocab[bos]), (eos, vocab[eos])]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        model_max_length=model_max_length,
        model_input_names=["input_ids", "attention_mask"],
        **specials,
    )
    fast.save_pretrained(directory)


def _perturb_norms_and_biases(model, seed: int, scale: float = 0.1) -> None:
    """transformers initialises norm weights to 1 and biases to 0; give them random values so that parity
    tests also check where those tensors go."""
    import torch

    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias") or "norm" in name.lower():
                param.add_(torch.randn(param.shape, generator=gen) * scale)


def save_xlm_roberta_tokenizer(directory: Path, model_max_length: int = 512) -> None:
    """<s> A </s> </s> B </s> (RobertaProcessing's layout), pad id 1."""
    specials = dict(
        bos_token="<s>",
        cls_token="<s>",
        pad_token="<pad>",
        eos_token="</s>",
        sep_token="</s>",
        unk_token="<unk>",
        mask_token="<mask>",
    )
    tokens = ["<s>", "<pad>", "</s>", "<unk>"] + words() + ["<mask>"]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    _save_word_level_tokenizer(directory, specials, vocab, "<s> $A </s> </s> $B </s>", model_max_length)


def xlm_roberta_cross_encoder(
    directory: Path, seed: int = 0, num_labels: int = 1, perturb: bool = True, **config
) -> Path:
    """Random-init ``XLMRobertaForSequenceClassification`` (type_vocab_size 1, max positions 512 + pad + 1, as
    bge-reranker) + tokenizer, saved as safetensors."""
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    directory = Path(directory)
    defaults = dict(
        vocab_size=len(words()) + 5,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=130,
        type_vocab_size=1,
        layer_norm_eps=1e-5,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        num_labels=num_labels,
    )
    cfg = XLMRobertaConfig(**{**defaults, **config})
    torch.manual_seed(seed)
    model = XLMRobertaForSequenceClassification(cfg)
    if perturb:
        _perturb_norms_and_biases(model, seed)
    model.eval()
    model.save_pretrained(directory, safe_serialization=True)
    save_xlm_roberta_tokenizer(directory, model_max_length=cfg.max_position_embeddings - cfg.pad_token_id - 1)
    return directory


MODERNBERT_SPECIALS = ["[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]"]


def save_modernbert_tokenizer(directory: Path, model_max_length: int = 8192) -> None:
    """[CLS] A [SEP] B [SEP]; special tokens after the words (pad id not 0, as in ModernBERT's vocabulary)."""
    specials = dict(cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]", unk_token="[UNK]", mask_token="[MASK]")
    vocab = {tok: i for i, tok in enumerate(words() + MODERNBERT_SPECIALS)}
    _save_word_level_tokenizer(directory, specials, vocab, "[CLS] $A [SEP] $B [SEP]", model_max_length)


def modernbert_cross_encoder(
    directory: Path, seed: int = 0, num_labels: int = 1, perturb: bool = True, **config
) -> Path:
    """Random-init ``ModernBertForSequenceClassification`` + tokenizer, saved as safetensors.

    Defaults are tiny with a small local window (8: 4 tokens each side), so that the short test pairs already
    cross it. Old-style keys (global_attn_every_n_layers, global/local_rope_theta) may be passed; transformers 5
    saves them as layer_types / rope_parameters.
    """
    import torch
    from transformers import ModernBertConfig, ModernBertForSequenceClassification

    directory = Path(directory)
    ids = {tok: len(words()) + i for i, tok in enumerate(MODERNBERT_SPECIALS)}
    defaults = dict(
        vocab_size=len(words()) + len(MODERNBERT_SPECIALS),
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=4,
        num_attention_heads=4,
        max_position_embeddings=512,
        local_attention=8,
        global_attn_every_n_layers=3,
        global_rope_theta=160_000.0,
        local_rope_theta=10_000.0,
        pad_token_id=ids["[PAD]"],
        cls_token_id=ids["[CLS]"],
        bos_token_id=ids["[CLS]"],
        sep_token_id=ids["[SEP]"],
        eos_token_id=ids["[SEP]"],
        num_labels=num_labels,
    )
    cfg = ModernBertConfig(**{**defaults, **config})
    torch.manual_seed(seed)
    model = ModernBertForSequenceClassification(cfg)
    if perturb:
        _perturb_norms_and_biases(model, seed)
    model.eval()
    model.save_pretrained(directory, safe_serialization=True)
    save_modernbert_tokenizer(directory, model_max_length=cfg.max_position_embeddings)
    return directory


# -- LLM (decoder) rerankers ---------------------------------------------------------------------------------

#: Qwen2/Qwen3's pre-tokenizer split (tokenizer.json of Qwen/Qwen3-*)
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
QWEN_ADDED = ["<think>", "</think>"]  # added, not special, as in Qwen3's tokenizer
#: Qwen3-Reranker-0.6B's per-layer shape (harness.localshapes), without its vocabulary and position limit
QWEN3_RERANKER_06B_LAYER = {
    **{k: v for k, v in QWEN3_RERANKER_06B_SHAPE.items() if k not in ("vocab_size", "max_position_embeddings")},
    "rope_theta": 1_000_000.0,
}


def qwen_tokenizer_object(yes_no: bool = True, vocab_size: int = 700):
    """A byte-level BPE ``tokenizers.Tokenizer`` in Qwen's shape: Qwen2 split regex + ByteLevel, chat special
    tokens, ``<think>``/``</think>`` added tokens; merges trained (deterministically) on the test texts and the
    Qwen3-Reranker prompt. With ``yes_no=False`` neither "yes" nor "no" is a single token."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    prompt = [
        "Judge whether the Document meets the requirements based on the Query and the Instruct provided.",
        "Note that the answer can only be",
        "<Instruct>: Given a web search query, retrieve relevant passages that answer the query",
        "<Query>: <Document>: system user assistant",
    ]
    corpus = [" ".join(TEXT)] * 3 + QUERIES * 3 + DOCUMENTS * 3 + prompt * 5
    if yes_no:
        corpus += ["yes", "no", '"yes" or "no"'] * 20
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=QWEN_SPECIAL,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus, trainer)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in QWEN_ADDED])
    has = {t: tok.token_to_id(t) is not None for t in ("yes", "no")}
    assert all(has.values()) if yes_no else not any(has.values()), has
    return tok


def save_qwen_tokenizer(directory: Path, yes_no: bool = True, model_max_length: int = 32768) -> None:
    """The Qwen-shaped tokenizer wrapped as a ``PreTrainedTokenizerFast`` (tokenizer.json + tokenizer_config.json)."""
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(
        tokenizer_object=qwen_tokenizer_object(yes_no=yes_no),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=model_max_length,
    )
    fast.save_pretrained(directory)


def qwen3_causal_lm(
    directory: Path, seed: int = 0, yes_no: bool = True, tokenizer_dir: Path | None = None, **config
) -> Path:
    """Random-init ``Qwen3ForCausalLM`` (tiny unless ``config`` says otherwise) + tokenizer, as safetensors.

    ``tokenizer_dir``: copy that folder's tokenizer files instead of building the Qwen-shaped test tokenizer.
    """
    import json
    import shutil

    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if tokenizer_dir is not None:
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            if (Path(tokenizer_dir) / name).is_file():
                shutil.copy(Path(tokenizer_dir) / name, directory / name)
    else:
        save_qwen_tokenizer(directory, yes_no=yes_no)
    vocab = len(json.loads((directory / "tokenizer.json").read_text())["model"]["vocab"]) + len(QWEN_ADDED)
    defaults = dict(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=4096,
        rope_theta=1_000_000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        pad_token_id=None,
        initializer_range=0.08,
    )
    params = {**defaults, **config}
    rope_theta = params.pop("rope_theta")
    cfg = Qwen3Config(**params, rope_parameters={"rope_type": "default", "rope_theta": rope_theta})
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(cfg)
    model.eval()
    model.save_pretrained(directory, safe_serialization=True)
    return directory


def llama_saved_by_transformers_5(directory: Path, seed: int = 0, rope_theta: float = 100_000.0) -> Path:
    """A tiny random ``LlamaForCausalLM`` (SmolLM2's architecture) with the Qwen-shaped tokenizer, saved by
    transformers' ``save_pretrained``: transformers >= 5 writes ``rope_theta`` only inside ``rope_parameters``
    (checked here), the case mlx-lm's Llama file misreads without ``llm_loading.rope_config``."""
    import json

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    directory = Path(directory)
    save_qwen_tokenizer(directory)
    vocab = len(json.loads((directory / "tokenizer.json").read_text())["model"]["vocab"]) + len(QWEN_ADDED)
    config = LlamaConfig(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         rope_parameters={"rope_type": "default", "rope_theta": rope_theta}, tie_word_embeddings=True)  # fmt: skip
    torch.manual_seed(seed)
    LlamaForCausalLM(config).eval().save_pretrained(directory)
    saved = json.loads((directory / "config.json").read_text())
    assert saved.get("rope_theta") is None and saved["rope_parameters"]["rope_theta"] == rope_theta
    return directory


def gemma3_text_causal_lm(directory: Path, seed: int = 0, sliding_window: int = 8) -> Path:
    """A tiny random ``Gemma3ForCausalLM`` (text only) with the Qwen-shaped tokenizer: 6 layers, so mlx-lm's and
    transformers' default pattern (5 sliding-window layers, then a global one) is whole; a window shorter than the
    test texts; norm weights perturbed (Gemma scales by 1 + w)."""
    import json

    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    directory = Path(directory)
    save_qwen_tokenizer(directory)
    vocab = len(json.loads((directory / "tokenizer.json").read_text())["model"]["vocab"]) + len(QWEN_ADDED)
    config = Gemma3TextConfig(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=6,
                              num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=512,
                              sliding_window=sliding_window, query_pre_attn_scalar=16)  # fmt: skip
    torch.manual_seed(seed)
    model = Gemma3ForCausalLM(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:
                param.add_(torch.randn_like(param) * 0.1)
    model.save_pretrained(directory)
    return directory


def infonce_examples():
    """InfoNCE examples over the test corpus: two positives per query, one hard negative each."""
    from mlx_cross_encoder.training.infonce import InfoNCEExample

    return [
        InfoNCEExample(
            q, DOCUMENTS[(2 * i + j) % len(DOCUMENTS)], (DOCUMENTS[(2 * i + j + 3) % len(DOCUMENTS)],), qid=str(i)
        )
        for i, q in enumerate(QUERIES)
        for j in range(2)
    ]


def qwen3_reranker_shaped(directory: Path, num_hidden_layers: int = 2, seed: int = 0, **config) -> Path:
    """Random-init Qwen3 with Qwen3-Reranker-0.6B's per-layer shape (hidden 1024, 16 q / 8 kv heads, head_dim
    128, intermediate 3072, tied embeddings, rope_theta 1e6, rms eps 1e-6), ``num_hidden_layers`` layers."""
    return qwen3_causal_lm(
        directory,
        seed=seed,
        **{**QWEN3_RERANKER_06B_LAYER, "num_hidden_layers": num_hidden_layers, "initializer_range": 0.02, **config},
    )


def peak_bytes(fn) -> int:
    """Peak MLX memory of ``fn`` above what was allocated before it (the weights)."""
    import mlx.core as mx

    mx.clear_cache()
    mx.reset_peak_memory()
    before = mx.get_active_memory()
    fn()
    return mx.get_peak_memory() - before


#: the repository's smoke dataset (suites/data/smoke: a few queries, candidates and qrels)
SMOKE = Path(__file__).resolve().parents[1] / "suites" / "data" / "smoke"


def smoke_dataset(top_k: int, name: str = "smoke") -> dict:
    """A suite's ``datasets`` entry for the smoke dataset, as a suite file would write it."""
    return {
        "name": name,
        "candidates": str(SMOKE / "candidates.json"),
        "qrels": str(SMOKE / "qrels.txt"),
        "top_k": top_k,
    }


#: the repository root (on PYTHONPATH in the fresh interpreters of :func:`run_fresh`)
REPO_ROOT = Path(__file__).resolve().parents[1]


def run_fresh(script: str, *args: str, timeout: int = 120, **env: str):
    """Run ``script`` (``python -c``) in a fresh interpreter with ``env`` and no inherited ``MLX_ENABLE_TF32``
    (MLX reads its TF32 switch once per process, so each setting needs a process of its own); returns the JSON it
    printed after ``RESULT ``. A failing script fails the caller with its stderr."""
    import json
    import os
    import subprocess
    import sys

    clean = {k: v for k, v in os.environ.items() if k != "MLX_ENABLE_TF32"}
    run = subprocess.run(
        [sys.executable, "-c", script, *args],
        env={**clean, **env, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    line = next(x for x in run.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])
