"""Train one model with one backend, alone in its own process: ``python -m harness.train.worker JOB.json RESULT.json``.

The parent (``harness.run`` with :mod:`harness.train.plan`) writes the job: the model (``base``, ``kind``,
``fine_tune``), the trainers' settings (``settings``: a ``TrainingSettings`` as JSON, LoRA settings included),
the training and dev files (JSONL pair records with their grade), the output folder and ``trainer``
("module:function", from the backend registry). The trainer function:

1. loads the base model and trains it with the settings (MLX: ``MLXCrossEncoderTrainer`` /
   ``Qwen3RerankerTrainer``; PyTorch: :func:`.torch_encoder.train_cross_encoder_torch` /
   :func:`.torch_llm.train_llm_reranker_torch`), evaluating the dev queries every ``eval_steps`` with
   :func:`dev_metric_fn` (``harness.metrics``: nDCG@10 with the graded judgments, MRR@10 at ``relevance_level``)
   and keeping the best;
2. saves the trained model as a plain checkpoint folder ``<output_dir>/model`` (LoRA merged into the weights; the
   LoRA adapter itself in ``<output_dir>/adapter``), which every backend loads like any other checkpoint;
3. returns the summary that becomes the run's ``train`` block.

A Python exception is written to RESULT.json as ``{"status": "error", ...}``; a crash or kill leaves no result and
the parent reports the exit status instead.
"""

from __future__ import annotations

import importlib
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

# Installs the import hook that loads the optimized BLAS right before mlx.core, whoever imports it later in this
# worker (the import itself loads no MLX, so torch workers are unaffected).
import mlx_cross_encoder  # noqa: F401

from ..run.worker import peak_rss_mb, worker_main


def read_records(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def dev_qrels(records: list[dict]) -> dict[str, dict[str, int]]:
    """The graded qrels of dev records under the ids the trainers give them (``eval_rankings``: queries ``q<i>`` in
    first-seen order of their text, documents ``q<i>-d<j>`` in order)."""
    order: dict[str, int] = {}
    qrels: dict[str, dict[str, int]] = {}
    for r in records:
        qid = f"q{order.setdefault(r['query'], len(order))}"
        docs = qrels.setdefault(qid, {})
        docs[f"{qid}-d{len(docs)}"] = int(r["grade"])
    return qrels


def dev_metric_fn(job: dict[str, Any]):
    """``metric_fn(run, qrels)`` for the trainers: the harness's metrics with the dev records' grades."""
    from mlx_cross_encoder.training.data import eval_rankings

    from ..metrics import evaluate

    records = read_records(job["dev_file"])
    graded = dev_qrels(records)
    _, docs, _ = eval_rankings(records)
    if {q: len(d) for q, d in docs.items()} != {q: len(d) for q, d in graded.items()}:
        raise RuntimeError("dev ids differ from the trainers' (eval_rankings) numbering")  # guards the key mapping

    def metric_fn(run: dict, qrels: dict) -> dict[str, float]:
        if set(qrels) != set(graded):
            raise RuntimeError("the trainer evaluated other dev queries than the dev file's")
        means, _ = evaluate(graded, run, job["dev_metrics"], int(job["relevance_level"]))
        return means

    return metric_fn


def settings_of_job(job: dict[str, Any], config: type | None = None, **fields):
    """The job's ``TrainingSettings``, or a family ``config`` (a subclass) with its own ``fields`` added."""
    from mlx_cross_encoder.training.settings import TrainingSettings

    return (config or TrainingSettings)(**{**job["settings"], **fields})


def _base_dir(job: dict[str, Any]) -> Path:
    from ..backends import resolve_model_dir

    return resolve_model_dir(job["base"])


def _dev(job: dict[str, Any]):
    return (job["dev_file"], dev_metric_fn(job)) if job.get("dev_file") else (None, None)


def _mlx_summary(summary: dict[str, Any], trainer) -> dict[str, Any]:
    import mlx.core as mx

    evaluations = [r for r in trainer.history if r.get("type") == "eval"]
    return {
        "device": "mlx-gpu" if mx.default_device().type == mx.gpu else "mlx-cpu",
        "steps": summary["steps"],
        "total_steps": summary["total_steps"],
        "epochs": summary["epochs"],
        "trainer_wall_time_s": summary["wall_time_s"],
        "train_time_s": summary["train_time_s"],
        "train_tokens": summary["train_tokens"],
        "tokens_per_s": summary["tokens_per_s"],
        "peak_memory_mb": summary["peak_memory_bytes"] / 2**20,
        "peak_memory_measure": "mx.get_peak_memory(): peak bytes of MLX arrays alive at once from the first step on "
        "(weights, gradients, optimizer state, activations, dev evaluations)",
        "best_dev": summary["best_metric"],
        "best_step": summary["best_step"],
        "final_dev": summary["final_metrics"],
        "last_dev": evaluations[-1]["metrics"] if evaluations else None,
        "evaluations": [{"step": r["step"], "metrics": r["metrics"], "improved": r["improved"]} for r in evaluations],
        "trainable_parameters": trainer.trainable_parameter_count(),
    }


def _torch_summary(result: dict[str, Any], trainable: int) -> dict[str, Any]:
    evaluations = result.get("evaluations") or []
    return {
        "device": result["device"],
        "steps": result["steps"],
        "total_steps": result["total_steps_planned"],
        "trainer_wall_time_s": result["wall_time_s"],
        "train_time_s": result["train_time_s"],
        "train_tokens": result["train_tokens"],
        "tokens_per_s": result["tokens_per_s"],
        "peak_memory_mb": result["peak_memory_bytes"] / 2**20 if result["peak_memory_bytes"] is not None else None,
        "peak_memory_measure": result["peak_memory_measure"],
        "best_dev": result.get("best_metric"),
        "best_step": result.get("best_step"),
        "final_dev": result["final_metrics"],
        "last_dev": evaluations[-1]["metrics"] if evaluations else None,
        "evaluations": evaluations,
        "dev_eval_time_s": result.get("eval_time_s"),
        "trainable_parameters": trainable,
    }


def _torch_device() -> str:
    from ..backends.torch_backend import resolve_device

    return resolve_device("auto")


# --- the four trainers ---------------------------------------------------------------------------------------------
def train_mlx_cross_encoder(job: dict[str, Any]) -> dict[str, Any]:
    from mlx_cross_encoder import MLXCrossEncoder
    from mlx_cross_encoder.training import MLXCrossEncoderConfig, MLXCrossEncoderTrainer

    out = Path(job["output_dir"])
    base = _base_dir(job)
    config = settings_of_job(
        job,
        config=MLXCrossEncoderConfig,
        pretrained_path=str(base),
        output_dir=str(out / "mlx-trainer"),
        dtype="float32",
        save_total_limit=1,
        show_progress_bar=bool(job.get("progress", True)),
    )
    model = MLXCrossEncoder(base, max_length=config.max_length, dtype="float32")
    trainer = MLXCrossEncoderTrainer(model, config)
    dev_file, metric_fn = _dev(job)
    summary = trainer.train(job["train_file"], dev_file, metric_fn=metric_fn)
    adapter = trainer.save_adapter(out / "adapter") if job["fine_tune"] == "lora" else None
    model_dir = trainer.export_hf(out / "model")  # LoRA merged, float32, transformers names
    shutil.rmtree(Path(config.output_dir) / "checkpoints", ignore_errors=True)  # resume state, not needed after
    return {
        **_mlx_summary(summary, trainer),
        "model_dir": str(model_dir),
        "adapter_dir": str(adapter) if adapter else None,
        "trainer": "mlx_cross_encoder.MLXCrossEncoderTrainer",
        "base_path": str(base),
    }


def train_mlx_llm(job: dict[str, Any]) -> dict[str, Any]:
    import mlx.core as mx
    from mlx.utils import tree_flatten

    from mlx_cross_encoder.training import Qwen3RerankerConfig, Qwen3RerankerTrainer

    out = Path(job["output_dir"])
    base = _base_dir(job)
    config = settings_of_job(
        job,
        config=Qwen3RerankerConfig,
        model_name=str(base),
        output_dir=str(out / "mlx-trainer"),
        instruction=job.get("instruction"),
        lora_num_layers=-1,
        dtype="float32",
        save_total_limit=1,
        show_progress_bar=bool(job.get("progress", True)),
    )
    trainer = Qwen3RerankerTrainer(config)
    trainer.prepare_model()
    dev_file, metric_fn = _dev(job)
    summary = trainer.train(job["train_file"], dev_file, metric_fn=metric_fn)
    result = _mlx_summary(summary, trainer)
    adapter = None
    if job["fine_tune"] == "lora":
        adapter = trainer.save_adapter(out / "adapter")
        trainer.fuse(dequantize=True)
    model_dir = out / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    weights = dict(tree_flatten(trainer.reranker.model.parameters()))  # mlx-lm names = transformers names
    leftovers = [k for k in weights if "lora" in k]
    if leftovers:
        raise RuntimeError(f"LoRA tensors left after fusing: {leftovers[:3]}")
    mx.save_safetensors(
        str(model_dir / "model.safetensors"),
        {k: v.astype(mx.float32) for k, v in weights.items()},
        metadata={"format": "pt"},
    )
    config_json = json.loads((base / "config.json").read_text())
    config_json.pop("quantization", None)
    config_json.pop("quantization_config", None)
    config_json["torch_dtype"] = "float32"
    (model_dir / "config.json").write_text(json.dumps(config_json, indent=2))
    from mlx_cross_encoder.training.export import TOKENIZER_FILES

    for name in TOKENIZER_FILES:  # copied next to the merged LLM's weights
        if (base / name).is_file():
            shutil.copy2(base / name, model_dir / name)
    shutil.rmtree(Path(config.output_dir) / "checkpoints", ignore_errors=True)
    return {
        **result,
        "model_dir": str(model_dir),
        "adapter_dir": str(adapter) if adapter else None,
        "trainer": "mlx_cross_encoder.Qwen3RerankerTrainer",
        "base_path": str(base),
    }


def mlx_lora_init(job: dict[str, Any], base: Path, out: Path) -> Path | None:
    """The MLX trainer's initial LoRA matrices for this job (same settings, seed and targets as
    :func:`train_mlx_cross_encoder` / :func:`train_mlx_llm` draw them), as the torch trainers' ``lora_init``: the
    PyTorch twin of a LoRA job starts where the MLX one does (else each framework draws its own LoRA ``A``
    matrices and the twins differ by that alone). None for full fine-tuning."""
    if job["fine_tune"] != "lora":
        return None
    import mlx.core as mx

    folder, scratch = out / "lora-init", out / "lora-init-mlx"
    if job["kind"] == "llm":
        from mlx_cross_encoder.training import Qwen3RerankerConfig, Qwen3RerankerTrainer

        config = settings_of_job(
            job, config=Qwen3RerankerConfig, model_name=str(base), output_dir=str(scratch),
            instruction=job.get("instruction"), lora_num_layers=-1, dtype="float32", show_progress_bar=False,
        )  # fmt: skip
        return Qwen3RerankerTrainer(config).prepare_model().save_adapter(folder)  # mlx-lm names = transformers'
    from mlx_cross_encoder import MLXCrossEncoder
    from mlx_cross_encoder.training import MLXCrossEncoderConfig, MLXCrossEncoderTrainer

    config = settings_of_job(
        job, config=MLXCrossEncoderConfig, pretrained_path=str(base), output_dir=str(scratch), dtype="float32",
        show_progress_bar=False,
    )  # fmt: skip
    trainer = MLXCrossEncoderTrainer(MLXCrossEncoder(base, max_length=config.max_length, dtype="float32"), config)
    initial = mx.load(str(trainer.prepare_model().save_adapter(scratch) / "adapters.safetensors"))
    renamed = trainer.encoder.model.hf_weights(dict(initial))  # transformers module names, as peft's
    folder.mkdir(parents=True, exist_ok=True)
    mx.save_safetensors(str(folder / "adapters.safetensors"), {k: v for k, v in renamed.items() if "lora" in k})
    return folder


def _trainable_count(model) -> int:
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))


def train_torch_cross_encoder(job: dict[str, Any]) -> dict[str, Any]:
    from .torch_encoder import train_cross_encoder_torch

    out = Path(job["output_dir"])
    base = _base_dir(job)
    settings = settings_of_job(job, output_dir=str(out / "torch-trainer"))
    dev_file, metric_fn = _dev(job)
    lora_init = mlx_lora_init(job, base, out)
    result = train_cross_encoder_torch(
        base, job["train_file"], dev_file, settings, metric_fn=metric_fn, device=_torch_device(), lora_init=lora_init
    )
    model = result["model"]
    trainable = _trainable_count(model)
    adapter = None
    if job["fine_tune"] == "lora":
        adapter = result["output_dir"]  # the peft adapter (LoRA + head)
        model[0].model = model[0].model.merge_and_unload()
    model.save_pretrained(str(out / "model"))
    return {
        **_torch_summary(result, trainable),
        "model_dir": str(out / "model"),
        "adapter_dir": adapter,
        "trainer": "sentence_transformers.CrossEncoderTrainer (harness.train.torch_encoder)",
        "base_path": str(base),
        "lora_init": "the MLX trainer's initial LoRA matrices" if lora_init else None,
    }


def rope_at_top_level(model_dir: Path) -> None:
    """Give a causal LM folder saved by transformers >= 5 its ``rope_theta`` (and ``rope_scaling``) at the top level
    of config.json as well (``mlx_cross_encoder.llm_loading.rope_config``): transformers 5 nests them in
    ``rope_parameters`` and mlx-lm's Llama file (SmolLM2) reads the top-level key only, so the MLX backend and
    ``fit_check`` would score the torch-trained folder with rope_theta 10,000 instead of its own."""
    from mlx_cross_encoder.llm_loading import rope_config

    path = model_dir / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    fixed = rope_config(config)
    if fixed != config:
        path.write_text(json.dumps(fixed, indent=2), encoding="utf-8")


def train_torch_llm(job: dict[str, Any]) -> dict[str, Any]:
    from .torch_llm import train_llm_reranker_torch

    out = Path(job["output_dir"])
    base = _base_dir(job)
    settings = settings_of_job(job, output_dir=str(out / "torch-trainer"))
    dev_file, metric_fn = _dev(job)
    result = train_llm_reranker_torch(
        base,
        job["train_file"],
        dev_file,
        settings,
        metric_fn=metric_fn,
        device=_torch_device(),
        instruction=job.get("instruction"),
        lora_init=mlx_lora_init(job, base, out),
    )
    model = result["model"]
    trainable = _trainable_count(model)
    adapter = None
    if job["fine_tune"] == "lora":
        adapter = result["output_dir"]
        model = model.merge_and_unload()
    model.save_pretrained(str(out / "model"))
    result["scorer"].tokenizer.save_pretrained(str(out / "model"))
    rope_at_top_level(out / "model")
    return {
        **_torch_summary(result, trainable),
        "model_dir": str(out / "model"),
        "adapter_dir": adapter,
        "trainer": "transformers + peft loop (harness.train.torch_llm.train_llm_reranker_torch)",
        "base_path": str(base),
    }


# --- entry point ---------------------------------------------------------------------------------------------------
def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Resolve ``job["trainer"]``, train, and add the process-level figures (wall time, peak RSS)."""
    module_name, _, function = job["trainer"].partition(":")
    trainer = getattr(importlib.import_module(module_name), function)
    start = time.perf_counter()
    result = trainer(job)
    from ..backends import weights_fingerprint

    result.update(
        status="ok",
        wall_time_s=time.perf_counter() - start,
        peak_rss_mb=peak_rss_mb(),
        model_fingerprint=weights_fingerprint(Path(result["model_dir"])),
    )
    return result


def main(argv: list[str] | None = None) -> int:
    return worker_main(argv, run_job, "python -m harness.train.worker JOB.json RESULT.json")


if __name__ == "__main__":
    sys.exit(main())
