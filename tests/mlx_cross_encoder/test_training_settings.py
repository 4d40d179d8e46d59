"""The one training-settings model: importable without MLX or torch, one set of names and defaults."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from mlx_cross_encoder.training.config import MLXCrossEncoderConfig, Qwen3RerankerConfig
from mlx_cross_encoder.training.settings import TrainingSettings


def test_settings_import_without_mlx_or_torch():
    code = (
        "import sys\n"
        "from mlx_cross_encoder.training import TrainingSettings, MLXCrossEncoderConfig, Qwen3RerankerConfig\n"
        "TrainingSettings(); MLXCrossEncoderConfig(); Qwen3RerankerConfig()\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('mlx', 'mlx_lm', 'torch', 'transformers'))\n"
        "print(','.join(loaded))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"importing the settings loaded {out.stdout.strip()}"


def test_family_configs_share_every_setting_and_default():
    shared = TrainingSettings()
    for config in (MLXCrossEncoderConfig(), Qwen3RerankerConfig()):
        assert set(TrainingSettings.model_fields) <= set(type(config).model_fields)
        assert config.settings() == shared  # same defaults: nothing shared is overridden by a family
    assert MLXCrossEncoderConfig().fine_tune() == "full" and Qwen3RerankerConfig().fine_tune() == "lora"
    assert MLXCrossEncoderConfig(fine_tune_type="lora").fine_tune() == "lora"


def test_settings_refuse_unknown_names_and_bad_values():
    with pytest.raises(ValidationError, match="warmup_ration"):
        TrainingSettings(warmup_ration=0.1)
    with pytest.raises(ValidationError, match="loss"):
        TrainingSettings(loss="hinge")
    with pytest.raises(ValidationError, match="batch_size"):
        TrainingSettings(batch_size=0)
    with pytest.raises(ValidationError, match="quantized"):
        MLXCrossEncoderConfig(quantize=4)  # the family default (full) cannot train a quantized base
    assert Qwen3RerankerConfig(quantize=4).fine_tune() == "lora"


@pytest.mark.parametrize(("ratio", "total", "expected"), [(0.1, 30, 3), (0.1, 31, 4), (0.0, 10, 0), (1.0, 7, 7)])
def test_warmup_updates(ratio, total, expected):
    assert TrainingSettings(warmup_ratio=ratio).warmup_updates(total) == expected
    assert TrainingSettings(warmup_ratio=ratio, warmup_steps=2).warmup_updates(total) == 2


def test_settings_round_trip_through_json():
    s = Qwen3RerankerConfig(adam_betas=[0.8, 0.9], lora_target_modules=["q_proj"], seed=7)
    assert Qwen3RerankerConfig.model_validate_json(s.model_dump_json()) == s
