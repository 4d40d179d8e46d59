"""Train in a child process that may be killed on purpose: ``python training_driver.py SPEC.json``.

The spec names the trainer (``encoder``: MLXCrossEncoderTrainer on a BERT folder, ``llm``: Qwen3RerankerTrainer),
its config, the records, and where to die with SIGKILL (as the OOM killer or a power cut does: no cleanup):
``after_step`` (once update N and its checkpoint, if any, are done), ``checkpoint_write`` (while the optimizer file of
checkpoint N is written), ``best_write`` (while the K-th new ``best/`` is written), ``best_swap`` (between the
two renames that replace ``best/`` the K-th time). A run that is not killed writes its final trainable
parameters and optimizer state to ``dump`` (``param.<name>`` / ``opt.<name>``).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import mlx_cross_encoder  # noqa: F401  # isort: skip  (the optimized BLAS before mlx.core)
import mlx.core as mx
from mlx.utils import tree_flatten


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def install_kill(kill: dict | None) -> list:
    """Patch the writer named by ``kill``; returns the callbacks for the trainer."""
    if not kill:
        return []
    where = kill["at"]
    if where == "after_step":
        return [lambda trainer, record: die() if record["step"] == kill["step"] else None]
    if where == "checkpoint_write":
        save = mx.save_safetensors
        tag = f"step-{kill['step']:07d}"  # in the temporary folder's name, or the final one's

        def killing_save(path, arrays, *args, **kwargs):
            if tag in str(path) and str(path).endswith("optimizer.safetensors"):
                save(path, {k: arrays[k] for k in list(arrays)[: max(1, len(arrays) // 2)]})  # half of it
                die()
            return save(path, arrays, *args, **kwargs)

        mx.save_safetensors = killing_save
        return []
    if where in ("best_write", "best_swap"):
        from mlx_cross_encoder.training import lora

        seen = {"n": 0}
        save, rename = mx.save_safetensors, os.rename

        def killing_best_save(path, arrays, *args, **kwargs):
            if ".best.tmp-" in str(path):
                seen["n"] += 1
                if where == "best_write" and seen["n"] == kill["nth"]:
                    save(path, {k: arrays[k] for k in list(arrays)[:1]})
                    die()
            return save(path, arrays, *args, **kwargs)

        def killing_rename(src, dst):
            rename(src, dst)
            if where == "best_swap" and seen["n"] == kill["nth"] and ".best.old-" in str(dst):
                die()  # the old best/ is moved aside, the new one not yet in place

        mx.save_safetensors = killing_best_save
        lora.os.rename = killing_rename
        return []
    raise ValueError(f"unknown kill point {where!r}")


def make_trainer(spec: dict):
    from mlx_cross_encoder.training import (
        MLXCrossEncoderConfig,
        MLXCrossEncoderTrainer,
        Qwen3RerankerConfig,
        Qwen3RerankerTrainer,
    )

    if spec["kind"] == "encoder":
        from mlx_cross_encoder import MLXCrossEncoder

        return MLXCrossEncoderTrainer(MLXCrossEncoder(spec["model_dir"]), MLXCrossEncoderConfig(**spec["config"]))
    return Qwen3RerankerTrainer(Qwen3RerankerConfig(model_name=spec["model_dir"], **spec["config"]))


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    trainer = make_trainer(spec)
    callbacks = install_kill(spec.get("kill"))
    metric_fn = None
    if spec.get("always_improves"):  # every evaluation is a new best, so best/ is replaced at each one

        def metric_fn(run, qrels, _calls=[]):  # noqa: B006  (the counter lives across calls)
            _calls.append(1)
            return {"ndcg@10": float(len(_calls))}

    summary = trainer.train(spec["train"], spec.get("dev"), metric_fn=metric_fn, callbacks=callbacks)
    state = {f"param.{k}": v for k, v in tree_flatten(trainer.model.trainable_parameters())}
    state |= {f"opt.{k}": v for k, v in tree_flatten(trainer.optimizer.state)}
    mx.save_safetensors(spec["dump"], state)
    Path(spec["dump"] + ".json").write_text(json.dumps({"summary": summary, "history": trainer.history}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
