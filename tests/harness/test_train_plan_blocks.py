"""A failed training's train block keeps the cause the worker spawner recorded (harness.run.spawn's failures)."""

import json
from pathlib import Path

from harness.run.spawn import _outcome
from harness.train.plan import TrainJob, train_block


def _job() -> TrainJob:
    block = {"model": "m", "backend": "mlx", "status": None, "artifact_dir": "a"}
    return TrainJob(model=None, backend="mlx", reranker="m-mlx", out_dir=Path("a"), job={}, block=block)


def test_a_killed_workers_block_keeps_its_exit_code_signal_and_output(tmp_path):
    failure = _outcome(-9, tmp_path / "no-result.json", "step 3\nstep 4\n")  # SIGKILL, no result written
    block = train_block(_job(), failure)
    assert block["status"] == "error"
    assert block["error"] == failure["error"] and "killed" in block["error"]
    assert block["exit_code"] == -9
    assert block["signal"] == "SIGKILL"
    assert block["log_tail"] == "step 3\nstep 4\n"
    assert "traceback" not in block


def test_a_python_exceptions_block_keeps_its_traceback_and_exit_code(tmp_path):
    result_file = tmp_path / "result.json"
    tb = "Traceback (most recent call last):\nRuntimeError: out of memory"
    result_file.write_text(json.dumps({"status": "error", "error": "RuntimeError: out of memory", "traceback": tb}))
    block = train_block(_job(), _outcome(1, result_file, "log line\n"))
    assert (block["error"], block["traceback"], block["exit_code"]) == ("RuntimeError: out of memory", tb, 1)
    assert "signal" not in block  # not ended by a signal


def test_an_ok_result_fills_the_block_and_a_harness_exception_keeps_its_message():
    ok = train_block(_job(), {"status": "ok", "steps": 5, "model_dir": "a/model"})
    assert (ok["status"], ok["steps"], ok["model_dir"]) == ("ok", 5, "a/model")
    err = train_block(_job(), {"status": "error", "error": "KeyError: 'x'"})
    assert (err["status"], err["error"]) == ("error", "KeyError: 'x'")
    assert not {"exit_code", "signal", "traceback", "log_tail"} & set(err)
