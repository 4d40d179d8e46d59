"""Resume and crash safety of the MLX trainers, with real SIGKILLs of a training child process.

Each case trains in a child (``training_driver.py``) that is killed at a chosen point, resumes in a fresh child
with ``resume_from_checkpoint=True`` and ``load_best_model_at_end=False``, and compares the final trainable
parameters and optimizer state (Adam moments, step counters, learning rates) with an uninterrupted run: they
must be identical, so the updates made after the resume are the ones the uninterrupted run made.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import mlx_cross_encoder  # noqa: F401  # isort: skip
import mlx.core as mx
import numpy as np
import pytest
from builders import bert_cross_encoder, qwen3_causal_lm
from training_helpers import toy_groups, toy_pairs

from mlx_cross_encoder.training.checkpoint import latest_checkpoint, list_checkpoints, recover_dir
from mlx_cross_encoder.training.lora import read_adapter_config

DRIVER = Path(__file__).with_name("training_driver.py")
TESTS = Path(__file__).resolve().parents[1]

# 32 pairs in micro-batches of 4, 2 per update: 4 updates per epoch, 12 in all; checkpoints every 2 updates and
# at each evaluation (every 3); dropout on, so the resumed run must redraw the same masks
ENCODER = dict(
    loss="bce",
    batch_size=4,
    gradient_accumulation_steps=2,
    num_epochs=3,
    learning_rate=1e-3,
    fine_tune_type="lora",
    lora_rank=4,
    lora_alpha=8,
    lora_dropout=0.1,
    warmup_steps=2,
    eval_steps=3,
    save_steps=2,
    save_total_limit=None,
    load_best_model_at_end=False,
    show_progress_bar=False,
    logging_steps=1,
    seed=3,
)
# 8 groups of 4 in micro-batches of 2 groups: 4 updates per epoch, 12 in all
LLM = dict(
    loss="listwise",
    group_size=4,
    batch_size=2,
    num_epochs=3,
    learning_rate=5e-3,
    lora_rank=4,
    lora_alpha=8,
    lora_dropout=0.1,
    max_length=128,
    warmup_steps=2,
    eval_steps=3,
    save_steps=2,
    save_total_limit=None,
    load_best_model_at_end=False,
    show_progress_bar=False,
    logging_steps=1,
    seed=5,
)


def run_child(spec: dict, folder: Path) -> subprocess.CompletedProcess:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"spec-{len(list(folder.glob('spec-*')))}.json"
    path.write_text(json.dumps(spec))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, str(DRIVER), str(path)], capture_output=True, text=True, env=env, timeout=600
    )


def make_spec(kind: str, model_dir: Path, out: Path, **extra) -> dict:
    config = {**(ENCODER if kind == "encoder" else LLM), "output_dir": str(out)}
    train = toy_pairs(8, 3) if kind == "encoder" else toy_groups(8, 3)
    dev = toy_pairs(4, 3, seed=9)
    return {
        "kind": kind,
        "model_dir": str(model_dir),
        "config": config,
        "train": train,
        "dev": dev,
        "dump": str(out) + ".final.safetensors",
        "always_improves": True,
        **extra,
    }


def trained(spec: dict, folder: Path) -> tuple[dict, dict]:
    done = run_child(spec, folder)
    assert done.returncode == 0, done.stderr[-3000:]
    return mx.load(spec["dump"]), json.loads(Path(spec["dump"] + ".json").read_text())


def killed(spec: dict, folder: Path) -> None:
    done = run_child(spec, folder)
    assert done.returncode == -signal.SIGKILL, (done.returncode, done.stderr[-3000:])
    assert not Path(spec["dump"]).exists()


def assert_same_state(got: dict, want: dict) -> None:
    assert sorted(got) == sorted(want)
    assert any(k.startswith("opt.") and k.endswith(".m") for k in want)  # Adam moments are compared too
    for k in want:
        np.testing.assert_array_equal(np.array(got[k]), np.array(want[k]), err_msg=k)


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return bert_cross_encoder(tmp_path_factory.mktemp("bert"), seed=0)


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory):
    return qwen3_causal_lm(tmp_path_factory.mktemp("qwen3"), seed=0)


@pytest.fixture(scope="module")
def uninterrupted(bert_dir, qwen_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("uninterrupted")
    runs = {}
    for kind, model_dir in (("encoder", bert_dir), ("llm", qwen_dir)):
        runs[kind] = trained(make_spec(kind, model_dir, folder / kind), folder)
    return runs


def resume(spec: dict, folder: Path) -> tuple[dict, dict]:
    spec = {**spec, "config": {**spec["config"], "resume_from_checkpoint": True}, "kill": None}
    return trained(spec, folder)


@pytest.mark.parametrize("kind", ["encoder", "llm"])
def test_resume_after_sigkill_equals_the_uninterrupted_run(kind, bert_dir, qwen_dir, uninterrupted, tmp_path):
    spec = make_spec(
        kind, bert_dir if kind == "encoder" else qwen_dir, tmp_path / "out", kill={"at": "after_step", "step": 7}
    )
    killed(spec, tmp_path)
    assert latest_checkpoint(tmp_path / "out").name == "step-0000006"  # 6 of the 12 updates left
    state, info = resume(spec, tmp_path)
    want_state, want_info = uninterrupted[kind]
    assert info["summary"]["resumed_from"].endswith("step-0000006") and info["summary"]["steps"] == 12
    assert_same_state(state, want_state)
    losses = [(r["step"], r["loss"], r["grad_norm"], r["lr"]) for r in info["history"] if r["type"] == "train"]
    assert losses == [
        (r["step"], r["loss"], r["grad_norm"], r["lr"]) for r in want_info["history"] if r["type"] == "train"
    ]


def test_crash_while_writing_a_checkpoint_leaves_it_ignored(bert_dir, uninterrupted, tmp_path):
    spec = make_spec("encoder", bert_dir, tmp_path / "out", kill={"at": "checkpoint_write", "step": 6})
    killed(spec, tmp_path)
    root = tmp_path / "out" / "checkpoints"
    assert list(root.glob(".step-0000006.tmp-*"))  # the half-written checkpoint is there ...
    assert [p.name for p in list_checkpoints(tmp_path / "out")][-1] == "step-0000004"  # ... and not listed
    state, info = resume(spec, tmp_path)
    assert info["summary"]["resumed_from"].endswith("step-0000004")
    assert not list(root.glob(".step-*.tmp-*"))  # the resumed run removed it
    assert_same_state(state, uninterrupted["encoder"][0])


@pytest.mark.parametrize("where", ["best_write", "best_swap"])
def test_crash_while_replacing_best_keeps_the_old_best(where, bert_dir, uninterrupted, tmp_path):
    out = tmp_path / "out"
    spec = make_spec("encoder", bert_dir, out, kill={"at": where, "nth": 2})  # the 2nd evaluation (step 6)
    killed(spec, tmp_path)
    if where == "best_swap":
        assert not (out / "best").exists()  # killed between the renames: the old copy is aside
    recover_dir(out / "best")
    config = read_adapter_config(out / "best")  # complete: config and weights
    assert config["step"] == 3
    best = mx.load(str(out / "best" / "adapters.safetensors"))
    at_3 = mx.load(str(out / "checkpoints" / "step-0000003" / "trainable.safetensors"))
    assert sorted(best) == sorted(at_3)
    for k in at_3:
        np.testing.assert_array_equal(np.array(best[k]), np.array(at_3[k]), err_msg=k)
    assert not list(out.glob(".best.*"))
    state, _ = resume(spec, tmp_path)
    assert_same_state(state, uninterrupted["encoder"][0])
    assert read_adapter_config(out / "best")["step"] == 12
