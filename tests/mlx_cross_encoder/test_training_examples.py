"""The README's Option 2 and Option 3 snippets, as the scripts in examples/, run with tiny local models."""

import json
import re
import subprocess
import sys
from pathlib import Path

import mlx_cross_encoder  # noqa: F401  # isort: skip  (loads the optimized BLAS before mlx.core)
import mlx.core as mx
import numpy as np
import pytest
from builders import bert_cross_encoder, pairs, qwen3_causal_lm

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run(script: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=EXAMPLES.parent,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_option3_cross_encoder_script(tmp_path):
    from mlx_cross_encoder import MLXCrossEncoder

    model_dir = bert_cross_encoder(tmp_path / "bert", seed=0)
    out = run(
        "train_cross_encoder.py",
        "--model",
        str(model_dir),
        "--output",
        str(tmp_path / "out"),
        "--export",
        str(tmp_path / "hf"),
    )
    score = float(re.search(r"score: ([0-9.]+)", out).group(1))
    adapter = tmp_path / "out" / "adapter"
    assert json.loads((adapter / "adapter_config.json").read_text())["fine_tune_type"] == "full"
    reloaded = MLXCrossEncoder(model_dir, adapter_path=adapter)
    assert float(reloaded.predict(("auth flow", "OAuth2 token exchange"))) == pytest.approx(score, abs=1e-6)
    base = MLXCrossEncoder(model_dir).predict(pairs())
    assert np.abs(reloaded.predict(pairs()) - base).max() > 1e-4  # it trained
    np.testing.assert_allclose(MLXCrossEncoder(tmp_path / "hf").predict(pairs()), reloaded.predict(pairs()), atol=1e-5)
    assert (tmp_path / "out" / "train_log.jsonl").read_text().strip()


def test_option2_qwen3_reranker_script(tmp_path):
    from mlx_cross_encoder.llm_reranker import Qwen3Reranker

    model_dir = qwen3_causal_lm(tmp_path / "qwen3", seed=0)
    out = run(
        "train_qwen3_reranker.py", "--model", str(model_dir), "--output", str(tmp_path / "out"), "--max-length", "128"
    )
    # 12 toy pairs, batches of 4, 8 accumulation steps: one update per epoch, 3 epochs
    assert re.search(r"steps: 3\b", out), out
    adapter = tmp_path / "out" / "adapter"
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["lora_parameters"]["rank"] == 16 and config["fine_tune_type"] == "lora"
    weights = mx.load(str(adapter / "adapters.safetensors"))
    lora_b = [np.array(v) for k, v in weights.items() if k.endswith("lora_b")]
    assert lora_b and all(np.abs(b).max() > 0 for b in lora_b)  # B starts at zero: non-zero means trained
    scores = Qwen3Reranker(model_dir, adapter_path=adapter, max_length=128).predict(pairs(4))
    assert scores.shape == (4,) and np.all((scores > 0) & (scores < 1))
