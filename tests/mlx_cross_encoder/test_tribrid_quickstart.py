"""The seed README's three Quick Start options, run as the examples/quickstart_*.py scripts with tiny local
models (the Hub is unreachable here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from builders import bert_cross_encoder, qwen3_causal_lm

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DOCS = [
    "OAuth2 PKCE flow exchanges authorization code for access token",
    "CSS grid layout provides two-dimensional positioning",
    "JWT tokens are signed with HMAC-SHA256 for API auth",
]


def run(script, *args, cwd):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return qwen3_causal_lm(tmp_path_factory.mktemp("qwen3") / "tiny", seed=0)


def test_option1_prints_the_top2_of_qwen3reranker(tiny, tmp_path):
    from mlx_cross_encoder import Qwen3Reranker

    out = run("quickstart_option1.py", tiny, cwd=tmp_path).splitlines()
    scores = Qwen3Reranker(tiny, max_length=512).predict([("authentication token exchange flow", d) for d in DOCS])
    top = np.argsort(-scores, kind="stable")[:2]
    assert out == [f"  [{scores[i]:.4f}] {DOCS[i][:80]}" for i in top]


def test_option2_trains_and_saves_an_adapter(tiny, tmp_path):
    out = run("quickstart_option2.py", tiny, cwd=tmp_path).strip().splitlines()[-1]
    adapter = Path(out)
    assert adapter == (tmp_path / "reranker-output" / "adapter").resolve() or adapter == Path("reranker-output/adapter")
    config = json.loads((tmp_path / "reranker-output" / "adapter" / "adapter_config.json").read_text())
    assert config["lora_parameters"]["rank"] == 16


def test_option3_trains_and_scores(tmp_path):
    bert = bert_cross_encoder(tmp_path / "ce", seed=2)
    line = run("quickstart_option3.py", bert, cwd=tmp_path).strip().splitlines()[-1]
    assert line.startswith("score=") and 0.0 <= float(line.split("=")[1]) <= 1.0
