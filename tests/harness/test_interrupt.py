"""Results that cannot be lost: a real `harness run` stopped by SIGTERM / SIGHUP / SIGKILL keeps its finished runs
valid, `--resume` completes it, an existing --output is refused, a locked one too, a bad --report is found first,
and the measuring parent loads no MLX; workers get the user's BLAS settings, not ours."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import builders
import pytest
import yaml
from faulty_backend import register as register_faulty_backend

from harness.cli import main
from harness.report import build_report
from harness.results import OutputLock, load_results

REPO = Path(__file__).resolve().parents[2]
TESTS = Path(__file__).resolve().parents[1]

# `harness run` as the console script runs it, with the test backend (tests/faulty_backend.py) registered first
HARNESS = """
import sys
from harness.backends.registry import BACKENDS, BackendInfo
BACKENDS["faulty"] = BackendInfo("faulty", "faulty_backend", "test faults")
from harness.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return builders.bert_cross_encoder(tmp_path_factory.mktemp("bert"), seed=2, initializer_range=0.2)


def write_suite(tmp_path: Path, tiny_bert: Path) -> Path:
    gate, pidfile = tmp_path / "gate", tmp_path / "worker.pid"
    suite = {
        "name": "interrupt-test",
        "datasets": [builders.smoke_dataset(top_k=5)],
        "rerankers": [
            {"name": "echo", "backend": "faulty", "model": str(tiny_bert), "options": {"fault": "none"}},
            {
                "name": "gated",
                "backend": "faulty",
                "model": str(tiny_bert),
                "options": {"fault": "gate", "gate": str(gate), "pidfile": str(pidfile)},
            },
        ],
        "metrics": ["ndcg@10"],
        "measure": {"warmup_queries": 0, "repeats": 1},
    }
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def harness(args: list[str], tmp_path: Path, code: str = HARNESS, extra_env: dict | None = None, **kwargs):
    env = {
        **os.environ,
        **(extra_env or {}),
        "PYTHONPATH": os.pathsep.join([str(TESTS), str(REPO)]),
        "TMPDIR": str(tmp_path / "tmp"),
        "RERANKER_HARNESS_CACHE": str(tmp_path / "cache"),
    }
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=tmp_path,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kwargs,
    )


def wait_for(condition, what: str, limit_s: float = 120) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")  # a zombie (exited, not yet reaped) is dead
    return not (stat.is_file() and stat.read_text().rsplit(") ", 1)[-1].startswith("Z"))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGKILL], ids=lambda s: s.name)
def test_a_stopped_run_keeps_its_finished_runs_and_resume_completes_it(tmp_path, tiny_bert, sig, monkeypatch, capsys):
    suite, out = write_suite(tmp_path, tiny_bert), tmp_path / "results.json"
    (tmp_path / "gate").write_text("closed")
    proc = harness(["run", str(suite), "--output", str(out), "--no-progress"], tmp_path)
    pidfile = tmp_path / "worker.pid"
    wait_for(lambda: pidfile.is_file() and pidfile.read_text(), "the gated worker to start")
    worker = int(pidfile.read_text())
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)

    results = load_results(out)  # valid JSON, valid schema, whatever the signal
    assert [(r["reranker"], r["status"]) for r in results["runs"]] == [("bm25", "ok"), ("echo", "ok")]
    assert results["complete"] is False
    if sig == signal.SIGKILL:  # no chance to say why; the file still says it never finished
        assert proc.returncode == -signal.SIGKILL
        assert results["incomplete_reason"].startswith("in progress")
    else:
        assert proc.returncode == 128 + sig
        reason = "interrupted by SIGINT (Ctrl-C)" if sig == signal.SIGINT else f"interrupted by {sig.name}"
        assert results["incomplete_reason"] == reason
        assert f"the finished runs are in {out} (marked incomplete)" in err
        assert not list((tmp_path / "tmp").glob("harness-run-*"))  # temporary folder removed
        assert "Incomplete results" in build_report([results], [str(out)])
    wait_for(lambda: not alive(worker), "the worker to be killed", limit_s=10)  # never left running

    register_faulty_backend(monkeypatch, tmp_path / "cache")  # in this process: the refusal starts no worker
    capsys.readouterr()
    assert main(["run", str(suite), "--output", str(out), "--no-progress"]) == 2
    assert "already exists; use --overwrite to replace it or --resume" in capsys.readouterr().err
    assert load_results(out) == results  # refused: untouched

    (tmp_path / "gate").unlink()
    resumed = harness(["run", str(suite), "--output", str(out), "--resume", "--no-progress"], tmp_path)
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err[-3000:]
    final = load_results(out)
    assert final["complete"] is True and final["incomplete_reason"] is None
    assert [(r["reranker"], r["status"]) for r in final["runs"]] == [("bm25", "ok"), ("echo", "ok"), ("gated", "ok")]
    assert final["runs"][:2] == results["runs"]  # kept as measured (same latency samples), not measured again
    assert "echo on smoke: ok" in err and "(kept from the resumed file)" in err


def test_resume_refuses_a_file_of_other_settings(tmp_path, tiny_bert, monkeypatch, capsys):
    suite, out = write_suite(tmp_path, tiny_bert), tmp_path / "results.json"
    first = harness(["run", str(suite), "--output", str(out), "--only", "echo", "--no-progress"], tmp_path)
    assert first.wait(timeout=120) == 0
    register_faulty_backend(monkeypatch, tmp_path / "cache")  # in this process: the refusal starts no worker
    capsys.readouterr()
    other = ["run", str(suite), "--output", str(out), "--only", "echo", "--max-queries", "2", "--resume"]
    assert main([*other, "--no-progress"]) == 2
    assert "cannot --resume it" in capsys.readouterr().err


def test_overwrite_replaces_and_a_locked_output_is_refused(tmp_path, tiny_bert):
    suite, out = write_suite(tmp_path, tiny_bert), tmp_path / "results.json"
    args = ["run", str(suite), "--output", str(out), "--only", "echo", "--no-progress"]
    assert harness(args, tmp_path).wait(timeout=120) == 0
    before = load_results(out)
    replaced = harness([*args, "--overwrite"], tmp_path)
    assert replaced.wait(timeout=120) == 0
    assert load_results(out)["environment"]["date"] >= before["environment"]["date"]
    with OutputLock(out):  # another harness run holds it
        locked = harness([*args, "--overwrite"], tmp_path)
        _, err = locked.communicate(timeout=60)
    assert locked.returncode == 2 and f"{out} is being written by another harness run" in err


def test_an_unwritable_report_is_found_before_any_work(tmp_path, tiny_bert, monkeypatch, capsys):
    suite, out = write_suite(tmp_path, tiny_bert), tmp_path / "results.json"
    (tmp_path / "file").write_text("a file, not a folder")
    register_faulty_backend(monkeypatch, tmp_path / "cache")
    assert main(["run", str(suite), "--output", str(out), "--report", str(tmp_path / "file" / "r.md")]) == 2
    err = capsys.readouterr().err
    assert "--report" in err and "not a writable folder" in err
    assert not out.exists()  # nothing was run


def test_the_measuring_parent_loads_no_mlx_or_torch():
    # mlx_cross_encoder's light modules (the training settings) may load; MLX, MKL and torch may not
    code = (
        "import os, sys, harness.cli, harness.run.executor, harness.suite, harness.results, harness.report, "
        "harness.sources, harness.backends\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mlx', 'torch')))\n"
        "print(os.environ.get('MKL_THREADING_LAYER'))"
    )
    env = {k: v for k, v in os.environ.items() if k != "MKL_THREADING_LAYER"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["[]", "None"]


@pytest.mark.parametrize("user_value", [None, "GNU"])
def test_workers_get_the_users_blas_settings_not_ours(user_value):
    code = (
        "import json, os, harness.run.spawn as spawn\n"
        "os.environ['MKL_THREADING_LAYER'] = 'SEQUENTIAL'  # as mlx_cross_encoder does in its process\n"
        "print(json.dumps(spawn.worker_environment().get('MKL_THREADING_LAYER')))"
    )
    env = {k: v for k, v in os.environ.items() if k != "MKL_THREADING_LAYER"}
    if user_value is not None:
        env["MKL_THREADING_LAYER"] = user_value
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == user_value


def test_resume_with_another_only_keeps_the_runs_measured_before(tmp_path, tiny_bert):
    suite, out = write_suite(tmp_path, tiny_bert), tmp_path / "results.json"
    first = harness(["run", str(suite), "--output", str(out), "--only", "echo", "--no-progress"], tmp_path)
    assert first.wait(timeout=120) == 0
    before = load_results(out)["runs"]
    assert "echo" in [r["reranker"] for r in before]
    resumed = harness(
        ["run", str(suite), "--output", str(out), "--only", "gated", "--resume", "--no-progress"], tmp_path
    )
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err[-3000:]
    runs = load_results(out)["runs"]
    assert [r for r in runs if r["reranker"] == "echo"] == [r for r in before if r["reranker"] == "echo"]
    assert ("gated", "ok") in [(r["reranker"], r["status"]) for r in runs]


# --- suites with a train: section, resumed (tests/faulty_trainer.py:train_copy "trains" by copying the base) ----------
HARNESS_TRAIN = """
import sys
from harness.backends.registry import BACKENDS, BackendInfo
BACKENDS["faulty"] = BackendInfo(
    "faulty", "faulty_backend", "test faults", trainers={"cross_encoder": "faulty_trainer:train_copy"}
)
import harness.run.training as training
training.RESUMABLE_TRAINERS = set(training.RESUMABLE_TRAINERS) | {"faulty_trainer:train_copy"}
from harness.cli import main
sys.exit(main(sys.argv[1:]))
"""


def write_train_suite(tmp_path: Path, tiny_bert: Path) -> Path:
    """The interrupt suite with one reranker (echo) and a train: section of one model trained by train_copy."""
    suite = yaml.safe_load(write_suite(tmp_path, tiny_bert).read_text())
    suite["rerankers"] = suite["rerankers"][:1]
    entries, qrels = [], []
    for i in range(6):
        hits = [
            {
                "content": f"trainingdoc {i} {j} zebra",
                "qid": f"t{i}",
                "docid": f"t{i}-{j}",
                "rank": j + 1,
                "score": 5.0 - j,
            }
            for j in range(4)
        ]
        entries.append({"query": f"trainingquery {i} walrus", "hits": hits})
        qrels += [f"t{i} 0 t{i}-{j} {int(j == 0)}" for j in range(4)]
    (tmp_path / "train.json").write_text(json.dumps(entries))
    (tmp_path / "train.qrels").write_text("\n".join(qrels) + "\n")
    suite["train"] = {
        "data": [{"candidates": str(tmp_path / "train.json"), "qrels": str(tmp_path / "train.qrels")}],
        "label_threshold": 1,
        "dev": {"fraction": 0.34, "seed": 0},
        "recipe": {"epochs": 1, "batch_size": 4, "max_length": 32},
        "models": [{"name": "tb", "base": str(tiny_bert), "backends": ["faulty"]}],
    }
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def train_run(tmp_path: Path, suite: Path, out: Path, *flags: str, **env: str) -> subprocess.Popen:
    extra = {"FAKE_TRAIN_LOG": str(tmp_path / "trainings.jsonl"), "FAKE_TRAIN_PIDFILE": str(tmp_path / "train.pid")}
    extra.update(FAKE_TRAIN_GATE=str(tmp_path / "train-gate"), **env)
    args = ["run", str(suite), "--output", str(out), "--no-progress", *flags]
    return harness(args, tmp_path, code=HARNESS_TRAIN, extra_env=extra)


def trainings(tmp_path: Path) -> list[dict]:
    log = tmp_path / "trainings.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []


def stop_the_gated_training(tmp_path: Path, proc: subprocess.Popen) -> str:
    pidfile = tmp_path / "train.pid"
    wait_for(lambda: pidfile.is_file() and pidfile.read_text(), "the gated training to start")
    trainer = int(pidfile.read_text())
    pidfile.unlink()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    wait_for(lambda: not alive(trainer), "the training worker to be killed", limit_s=10)
    return err


def test_resume_keeps_the_kept_runs_in_the_file_while_a_training_is_interrupted(tmp_path, tiny_bert):
    suite, out = write_train_suite(tmp_path, tiny_bert), tmp_path / "results.json"
    first = train_run(tmp_path, suite, out, FAKE_TRAIN_FAULT="raise")
    _, err = first.communicate(timeout=120)
    assert first.returncode == 1, err[-3000:]  # the training failed; the other runs are ok
    before = load_results(out)
    assert [(r["reranker"], r["status"]) for r in before["runs"]] == [
        ("bm25", "ok"), ("echo", "ok"), ("tb-faulty", "error")
    ]  # fmt: skip

    (tmp_path / "train-gate").write_text("closed")  # --resume trains tb again (it failed) and is stopped doing so
    resumed = train_run(tmp_path, suite, out, "--resume")
    stop_the_gated_training(tmp_path, resumed)
    stopped = load_results(out)
    assert stopped["complete"] is False and stopped["incomplete_reason"] == "interrupted by SIGTERM"
    assert stopped["runs"] == before["runs"]  # nothing lost: the kept runs are in the file from the start
    assert stopped["train"]["models"] == before["train"]["models"]

    (tmp_path / "train-gate").unlink()
    again = train_run(tmp_path, suite, out, "--resume")
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err[-3000:]
    final = load_results(out)
    assert final["complete"] is True
    assert final["runs"][:2] == before["runs"][:2]  # kept as measured
    assert [(r["reranker"], r["status"]) for r in final["runs"]][2:] == [("tb-faulty", "ok")]
    assert [b["status"] for b in final["train"]["models"]] == ["ok"]


def test_resume_keeps_a_complete_training_and_replaces_another_only_once_retrained(tmp_path, tiny_bert):
    suite, out = write_train_suite(tmp_path, tiny_bert), tmp_path / "results.json"
    first = train_run(tmp_path, suite, out)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err[-3000:]
    before = load_results(out)
    block = before["train"]["models"][0]
    model_dir = Path(block["model_dir"])
    assert model_dir.parent == tmp_path / "results.train" / "tb-faulty" and len(trainings(tmp_path)) == 1
    inode = model_dir.stat().st_ino

    resumed = train_run(tmp_path, suite, out, "--resume")  # everything done and unchanged: nothing is redone
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err[-3000:]
    assert len(trainings(tmp_path)) == 1  # not trained again
    assert model_dir.stat().st_ino == inode  # the trained folder was not deleted and rewritten
    after = load_results(out)
    assert after["runs"] == before["runs"] and after["train"]["models"] == before["train"]["models"]
    assert "tb-faulty on smoke: ok" in err and "kept" in err.split("tb-faulty on smoke: ok", 1)[1].splitlines()[0]

    # the trained weights are not the ones recorded any more: trained again, into another folder; the old folder
    # stays whole until the new one is complete
    weights = model_dir / "model.safetensors"
    weights.write_bytes(weights.read_bytes() + b" ")
    tampered = weights.read_bytes()
    (tmp_path / "train-gate").write_text("closed")
    retrain = train_run(tmp_path, suite, out, "--resume")
    pidfile = tmp_path / "train.pid"
    wait_for(lambda: pidfile.is_file() and pidfile.read_text(), "the gated training to start")
    assert weights.read_bytes() == tampered  # not deleted before the new model exists
    stop_the_gated_training(tmp_path, retrain)
    assert weights.read_bytes() == tampered
    assert load_results(out)["runs"] == before["runs"]

    (tmp_path / "train-gate").unlink()
    again = train_run(tmp_path, suite, out, "--resume")
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err[-3000:]
    assert len(trainings(tmp_path)) == 3
    final = load_results(out)
    new_block = final["train"]["models"][0]
    assert new_block["status"] == "ok" and new_block["model_dir"] == str(model_dir)
    assert weights.read_bytes() != tampered  # replaced by the new training
    tb = next(r for r in final["runs"] if r["reranker"] == "tb-faulty")
    assert tb["status"] == "ok" and tb["protocol"]["model_fingerprint"] == new_block["model_fingerprint"]
    assert sorted(p.name for p in (tmp_path / "results.train").iterdir()) == ["data", "tb-faulty"]  # no leftovers


def test_an_interrupted_training_resumes_from_its_checkpoint(tmp_path, tiny_bert):
    suite, out = write_train_suite(tmp_path, tiny_bert), tmp_path / "results.json"
    (tmp_path / "train-gate").write_text("closed")
    first = train_run(tmp_path, suite, out, FAKE_TRAIN_CHECKPOINT="1")  # writes a checkpoint, then is stopped
    stop_the_gated_training(tmp_path, first)

    (tmp_path / "train-gate").unlink()
    resumed = train_run(tmp_path, suite, out, "--resume")
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err[-3000:]
    calls = trainings(tmp_path)
    assert [c["resume_from_checkpoint"] for c in calls] == [False, True]
    assert calls[0]["output_dir"] == calls[1]["output_dir"]  # the same folder, where the checkpoint is
    final = load_results(out)
    assert final["train"]["models"][0]["status"] == "ok"
    assert final["train"]["models"][0]["model_dir"] == str(tmp_path / "results.train" / "tb-faulty" / "model")
    assert [(r["reranker"], r["status"]) for r in final["runs"]] == [
        ("bm25", "ok"),
        ("echo", "ok"),
        ("tb-faulty", "ok"),
    ]
