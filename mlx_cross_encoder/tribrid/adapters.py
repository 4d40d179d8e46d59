"""LoRA adapters between mlx-lm's format (our Qwen3RerankerTrainer) and TriBridRAG's ``mlx_qwen3`` format.

TriBridRAG (``server/retrieval/mlx_qwen3.py`` ``apply_lora_layers``; ``server/training/mlx_qwen3_trainer.py``
saving; ``write_mlx_manifest``) wraps every Linear whose last name is in ``target_modules`` as
``y = base(x) + (alpha / rank) * (x @ lora_A.T) @ lora_B.T`` with ``lora_A: (rank, in)``, ``lora_B: (out, rank)``
and saves the trainable tensors to ``adapter.npz`` as ``model.layers.<i>.<path>.lora_A|lora_B``, plus
``adapter_config.json`` (backend, base_model, prompt_template_version, lora_rank, lora_alpha, lora_dropout,
target_modules, applied_modules, yes_token_id, no_token_id, suffix_hash) and ``tribrid_reranker_manifest.json``
(backend, base_model, run_id, created_at, prompt_template_version, yes_token_id, no_token_id, suffix_hash).

mlx-lm's ``LoRALinear`` computes ``y = linear(x) + scale * (x @ lora_a) @ lora_b`` with ``lora_a: (in, rank)``,
``lora_b: (rank, out)``, tensors ``model.layers.<i>.<path>.lora_a|lora_b`` in ``adapters.safetensors``. So
``lora_A = lora_a.T``, ``lora_B = lora_b.T`` and ``alpha = scale * rank``; the two compute the same function.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path

import mlx.core as mx

from ..llm_template import QWEN3_TEMPLATE
from ..training.lora import ADAPTER_CONFIG, ADAPTER_WEIGHTS, write_dir_atomically

TRIBRID_WEIGHTS = "adapter.npz"
TRIBRID_CONFIG = "adapter_config.json"
TRIBRID_MANIFEST = "tribrid_reranker_manifest.json"
BACKEND = "mlx_qwen3"
PROMPT_TEMPLATE_VERSION = "mlx_qwen3_v1"
#: TriBridRAG's SUFFIX (the assistant turn with an empty think block) = our QWEN3_TEMPLATE.suffix
SUFFIX = QWEN3_TEMPLATE.suffix
_KEY = re.compile(r"^model\.layers\.(\d+)\.(.+)\.(lora_a|lora_b|lora_A|lora_B)$")


def suffix_hash() -> str:
    return hashlib.sha256(SUFFIX.encode("utf-8")).hexdigest()


def _json(path: Path) -> dict:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return obj


def _split(name: str, path: Path) -> tuple[int, str, str]:
    m = _KEY.match(name)
    if m is None:
        raise ValueError(f"{path}: tensor {name!r} is not a LoRA tensor of a decoder layer (model.layers.<i>...)")
    return int(m.group(1)), m.group(2), m.group(3)


def export_tribrid_adapter(
    src, dst, *, base_model: str, yes_token_id: int, no_token_id: int, run_id: str = "mlx-cross-encoder"
) -> Path:
    """Write an mlx-lm LoRA adapter folder ``src`` as a TriBridRAG ``mlx_qwen3`` artifact folder ``dst``
    (atomically). ``base_model`` goes to ``base_model`` (TriBridRAG refuses an artifact whose base differs from
    its configured ``learning_reranker_base_model``). Layers the adapter skipped get no tensors: TriBridRAG
    keeps their fresh ``lora_B = 0``, i.e. no change, as in mlx-lm."""
    src = Path(src)
    config = _json(src / ADAPTER_CONFIG)
    if config.get("fine_tune_type", "lora") != "lora":
        raise ValueError(f"{src}: only LoRA adapters convert (fine_tune_type={config.get('fine_tune_type')!r})")
    lp = config.get("lora_parameters") or {}
    rank, scale = int(lp["rank"]), float(lp["scale"])
    weights = mx.load(str(src / ADAPTER_WEIGHTS))
    out: dict[str, mx.array] = {}
    paths: set[str] = set()
    for name, w in weights.items():
        layer, path, leaf = _split(name, src / ADAPTER_WEIGHTS)
        paths.add(path)
        out[f"model.layers.{layer}.{path}.{leaf.upper().replace('LORA', 'lora')}"] = mx.array(w.T)
    modules = sorted({p.rsplit(".", 1)[-1] for p in paths})
    common = {
        "backend": BACKEND,
        "base_model": str(base_model),
        "prompt_template_version": PROMPT_TEMPLATE_VERSION,
        "yes_token_id": int(yes_token_id),
        "no_token_id": int(no_token_id),
        "suffix_hash": suffix_hash(),
    }
    adapter_cfg = {
        **common,
        "lora_rank": rank,
        "lora_alpha": scale * rank,
        "lora_dropout": float(lp.get("dropout", 0.0)),
        "target_modules": modules,
        "applied_modules": len(out) // 2,
    }
    manifest = {**common, "run_id": str(run_id), "created_at": int(time.time())}

    def write(tmp: Path) -> None:
        mx.savez(str(tmp / TRIBRID_WEIGHTS), **out)
        (tmp / TRIBRID_CONFIG).write_text(json.dumps(adapter_cfg, indent=2) + "\n", encoding="utf-8")
        (tmp / TRIBRID_MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    return write_dir_atomically(Path(dst), write)


def convert_tribrid_adapter(src, dst) -> Path:
    """Write a TriBridRAG ``mlx_qwen3`` artifact folder ``src`` as an mlx-lm adapter folder ``dst`` that
    ``Qwen3Reranker(adapter_path=dst)`` loads. Values in the artifact's ``adapter_config.json`` win, as at
    TriBridRAG's inference; the manifest's backend must be ``mlx_qwen3`` when there is one."""
    src = Path(src)
    if not (src / TRIBRID_WEIGHTS).is_file():
        raise FileNotFoundError(f"{src} is not a TriBridRAG adapter folder: {TRIBRID_WEIGHTS} is missing")
    manifest = _json(src / TRIBRID_MANIFEST) if (src / TRIBRID_MANIFEST).is_file() else {}
    if manifest and manifest.get("backend") != BACKEND:
        raise ValueError(f"{src / TRIBRID_MANIFEST}: backend {manifest.get('backend')!r} is not {BACKEND!r}")
    cfg = _json(src / TRIBRID_CONFIG)
    for field in ("lora_rank", "lora_alpha"):
        if field not in cfg:
            raise ValueError(f"{src / TRIBRID_CONFIG}: field {field!r} is missing")
    rank, alpha = int(cfg["lora_rank"]), float(cfg["lora_alpha"])
    weights = mx.load(str(src / TRIBRID_WEIGHTS))
    out: dict[str, mx.array] = {}
    paths: set[str] = set()
    layers: set[int] = set()
    for name, w in weights.items():
        layer, path, leaf = _split(name, src / TRIBRID_WEIGHTS)
        if leaf not in ("lora_A", "lora_B"):
            raise ValueError(f"{src / TRIBRID_WEIGHTS}: tensor {name!r} is not TriBridRAG's lora_A/lora_B")
        if w.ndim != 2 or rank not in (w.shape[0] if leaf == "lora_A" else w.shape[1],):
            raise ValueError(f"{src / TRIBRID_WEIGHTS}: {name} shape {tuple(w.shape)} does not fit lora_rank={rank}")
        layers.add(layer)
        paths.add(path)
        out[f"model.layers.{layer}.{path}.{leaf.lower()}"] = mx.array(w.T)
    if not out:
        raise ValueError(f"{src / TRIBRID_WEIGHTS}: no LoRA tensors")
    config = {
        "fine_tune_type": "lora",
        "num_layers": max(layers) + 1,  # TriBridRAG wraps every layer; mlx-lm counts layers from the last
        "lora_parameters": {
            "rank": rank,
            "scale": alpha / rank,
            "dropout": float(cfg.get("lora_dropout", 0.0)),
            "keys": sorted(paths),
        },
        "model": manifest.get("base_model") or cfg.get("base_model"),
        "tribrid": {"manifest": manifest, "adapter_config": cfg},
    }

    def write(tmp: Path) -> None:
        mx.save_safetensors(str(tmp / ADAPTER_WEIGHTS), out)
        (tmp / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2), encoding="utf-8")

    return write_dir_atomically(Path(dst), write)


def fuse_tribrid_adapter(src, base, dst) -> Path:
    """A plain checkpoint folder ``dst``: the Hugging Face folder ``base`` with the TriBridRAG artifact ``src``
    merged in (mlx-lm's ``fuse``: ``W + scale * (lora_a @ lora_b).T`` = TriBridRAG's ``W + alpha/rank * B @ A``),
    saved by mlx-lm (safetensors, config, tokenizer), written atomically. The harness measures a promoted adapter
    this way, with either backend, like the LoRA models it trains itself (saved merged)."""
    import tempfile

    from mlx.utils import tree_unflatten
    from mlx_lm.utils import load, save

    with tempfile.TemporaryDirectory() as tmp:
        adapter = convert_tribrid_adapter(src, Path(tmp) / "mlx_lm")
        model, tokenizer, config = load(str(base), adapter_path=str(adapter), return_config=True)
        fused = [(name, m.fuse()) for name, m in model.named_modules() if hasattr(m, "fuse")]
        if not fused:
            raise ValueError(f"{src}: no LoRA layer was applied to {base}")
        model.update_modules(tree_unflatten(fused))
        return write_dir_atomically(Path(dst), lambda out: save(out, str(base), model, tokenizer, config, False))
