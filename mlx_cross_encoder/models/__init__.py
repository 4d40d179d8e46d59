"""Encoder architectures, one file each (mlx-lm's layout): ``ModelArgs`` dataclass + ``Model`` module.

Every ``Model`` takes ``(input_ids, attention_mask, token_type_ids=None)`` and returns classification logits of
shape ``(batch, num_labels)``. The architecture's facts live on its ``Model``, nowhere else:

* ``sanitize(weights)`` maps a Hugging Face state dict onto its parameters, ``hf_weights(weights)`` maps them back
  (``training.export``);
* ``head_prefixes`` (the classification head: trained in full with LoRA, never quantized) and ``lora_targets``
  (the default LoRA target modules, ``training.lora``);
* ``max_positions``: the longest input the positions allow (caps ``max_length``).
"""

from __future__ import annotations

import importlib
from dataclasses import fields
from types import ModuleType
from typing import Any

from ..errors import UnsupportedArchitectureError

#: Hugging Face ``architectures`` name -> module under mlx_cross_encoder.models
ARCHITECTURES = {
    "BertForSequenceClassification": "bert",
    "XLMRobertaForSequenceClassification": "xlm_roberta",
    "ModernBertForSequenceClassification": "modernbert",
}


def architecture_of(config: dict[str, Any]) -> str:
    archs = config.get("architectures") or []
    for arch in archs:
        if arch in ARCHITECTURES:
            return arch
    shown = ", ".join(archs) if archs else f"none (model_type={config.get('model_type')!r})"
    raise UnsupportedArchitectureError(
        f"unsupported architecture {shown}; mlx_cross_encoder supports: {', '.join(sorted(ARCHITECTURES))}"
    )


def get_model_module(config: dict[str, Any]) -> ModuleType:
    return importlib.import_module(f"{__name__}.{ARCHITECTURES[architecture_of(config)]}")


def args_from_dict(cls, params: dict[str, Any]):
    """Build a config dataclass from a config.json dict, ignoring keys the dataclass does not declare."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in params.items() if k in names})


def num_labels_of(config: dict[str, Any]) -> int:
    if "num_labels" in config:
        return int(config["num_labels"])
    if config.get("id2label"):
        return len(config["id2label"])
    return 2  # transformers' PretrainedConfig default
