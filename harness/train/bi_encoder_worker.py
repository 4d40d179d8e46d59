"""The trainers of ``train:`` models with ``kind: bi_encoder``: InfoNCE on MLX, its sentence-transformers twin on torch.

Run by the training worker (``python -m harness.train.worker``) like the cross-encoder and LLM trainers: the backend
registry names ``train_mlx_bi_encoder`` / ``train_torch_bi_encoder`` for the kind. Both read the same job:

* **Examples**: the job's train file (the section's pair records) through
  ``harness.train.bi_encoder_data.examples_from_records``: per query each positive with ``group_size - 1`` hard
  negatives (grade-0 records, round-robin); in-batch negatives come from the other examples of a batch.
* **Recipe** (:func:`infonce_settings`): the suite recipe's ``batch_size``, ``num_epochs`` / ``max_steps``,
  ``learning_rate``, ``weight_decay``, ``warmup_ratio``, ``seed`` and ``max_length``; ``temperature`` is InfoNCE's
  (MNRL ``scale = 1 / temperature``: sentence-transformers' default scale 20 is ``temperature: 0.05``). Keys the
  InfoNCE trainers do not implement are refused when set (``loss``, gradient accumulation, clipping, another
  schedule, ...), so a recipe never means something it does not do.
* **Training**: MLX ``mlx_cross_encoder.training.infonce.InfoNCETrainer`` on ``MLXEmbedder``; PyTorch
  ``harness.train.bi_encoder_torch.train_sentence_transformer`` (``MultipleNegativesRankingLoss`` on a
  ``SentenceTransformer``): same batches, loss, optimizer and schedule, update for update. ``fine_tune``: full, or
  LoRA (mlx-lm ``LoRALinear`` / PEFT on the same modules, the same initial adapters for decoders; no dropout).
* **Dev and checkpoint selection**: when the job has a dev file, the model ranks each dev query's documents (the
  dev file's records: with ``recipe.candidates: all`` each dev query's full candidate list) by cosine, scored by
  the harness's metrics with the dev records' grades (:func:`dev_evaluator`), before the first update (step 0: the
  untrained model is a candidate), every ``recipe.eval_steps`` updates and after the last; both trainers keep the
  first best ``job["dev_metric"]`` (``infonce.DevSelection``) and save that step's weights. ``final_dev`` = the
  kept model's dev metrics. Without a dev file the last step's model is kept.
* **Output**: ``<output_dir>/model``, a sentence-transformers folder (``MLXEmbedder.save_pretrained`` /
  ``SentenceTransformer.save``; LoRA adapters fused into the weights first), which the harness infers as a bi-encoder and evaluates with the same backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .worker import _base_dir, _torch_device, dev_metric_fn, read_records

#: TrainingSettings keys the InfoNCE trainers do not implement, with the only value they accept
UNSUPPORTED = {
    "loss": "bce",  # the default; InfoNCE is the loss of kind bi_encoder
    "gradient_accumulation_steps": 1,
    "lr_scheduler": "linear",
    "warmup_steps": None,
    "max_grad_norm": None,
    "quantize": None,
    "early_stopping_patience": None,
    "adam_betas": [0.9, 0.999],
    "adam_eps": 1e-8,
    "pos_weight": None,
    "lora_dropout": 0.0,  # LoRA without dropout on both stacks
}
LOSS = "InfoNCE: sentence-transformers MultipleNegativesRankingLoss (in-batch + hard negatives, scale 1/temperature)"


def infonce_settings(job: dict[str, Any]):
    """The ``InfoNCESettings`` of a job, or ValueError naming every recipe key the InfoNCE trainers would ignore."""
    from mlx_cross_encoder.training.infonce import InfoNCESettings

    s = job["settings"]
    wrong = []
    for key, allowed in UNSUPPORTED.items():
        value = list(s[key]) if isinstance(s.get(key), (list, tuple)) else s.get(key)
        if key == "max_grad_norm" and value == 0:
            continue  # 0 disables clipping, as null does
        if value != allowed:
            wrong.append(f"{key}={value!r} (supported: {allowed!r})")
    if wrong:
        raise ValueError(
            f"train model {job['model']} (kind bi_encoder): the InfoNCE trainers do not implement "
            + ", ".join(wrong)
            + "; set these recipe keys to the supported values"
        )
    return InfoNCESettings(
        scale=1.0 / s["temperature"],
        batch_size=s["batch_size"],
        epochs=s["num_epochs"],
        max_steps=s["max_steps"],
        learning_rate=s["learning_rate"],
        weight_decay=s["weight_decay"],
        warmup_ratio=s["warmup_ratio"],
        fine_tune=job["fine_tune"],
        lora_rank=s["lora_rank"],
        lora_alpha=s["lora_alpha"],
        lora_targets=s["lora_target_modules"],
        seed=s["seed"],
        eval_steps=s["eval_steps"],
    )


def job_examples(job: dict[str, Any]) -> list:
    from .bi_encoder_data import examples_from_records

    examples = examples_from_records(read_records(job["train_file"]), negatives=job["settings"]["group_size"] - 1)
    if not examples:
        raise ValueError(f"{job['train_file']}: no InfoNCE example (no query with a positive and a grade-0 record)")
    return examples


def dev_evaluator(job: dict[str, Any], encode):
    """``evaluate() -> dev metrics`` of the current weights (None without a dev file): each dev query's documents
    ranked by cosine (``encode(texts) -> array``), under the ids and metrics the other trainers' dev evaluations
    use (``eval_rankings``, ``dev_metric_fn``)."""
    if not job.get("dev_file"):
        return None
    from mlx_cross_encoder.training.data import eval_rankings

    from ..backends.bi_encoder import cosine_scores

    queries, docs, qrels = eval_rankings(read_records(job["dev_file"]))
    pairs = [(queries[q], d) for q in queries for d in docs[q]]
    texts = list(dict.fromkeys(t for p in pairs for t in p))
    metric_fn = dev_metric_fn(job)

    def evaluate() -> dict[str, float]:
        scores = iter(cosine_scores(encode(texts), pairs, texts).tolist())
        run = {q: {f"{q}-d{j}": next(scores) for j in range(len(docs[q]))} for q in queries}
        return metric_fn(run, qrels)

    return evaluate


def _summary(job, summary: dict, examples: list, settings, device: str, trainable: int) -> dict[str, Any]:
    losses = summary["losses"]
    chosen = summary["selection"] or {}
    return {
        "device": device,
        "loss": LOSS,
        "infonce": settings.model_dump(mode="json"),
        "n_examples": len(examples),
        "steps": summary["steps"],
        "total_steps": summary["steps"],
        "trainer_wall_time_s": summary["wall_s"],
        "train_time_s": summary["wall_s"],
        "train_tokens": summary["tokens"],
        "tokens_per_s": summary["tokens_per_s"],
        "loss_first_last10": [float(np.mean(losses[:10])), float(np.mean(losses[-10:]))],
        # per update (tokenization, forward, backward, AdamW, loss read back; dev evaluations apart): the first
        # (warm-up: kernel builds, allocator) and the median of the others
        "first_step_s": summary["step_times_s"][0],
        "step_median_s": float(np.median(summary["step_times_s"][1:])) if len(summary["step_times_s"]) > 1 else None,
        "best_dev": (chosen.get("best_metrics") or {}).get(job["dev_metric"]),
        "best_step": chosen.get("best_step"),
        "final_dev": chosen.get("best_metrics"),  # the kept (restored) model's
        "last_dev": chosen["evaluations"][-1]["metrics"] if chosen else None,
        "evaluations": chosen.get("evaluations", []),
        "dev_eval_time_s": chosen.get("eval_time_s"),
        "trainable_parameters": trainable,
        "adapter_dir": None,
        "base_path": str(_base_dir(job)),
    }


def train_mlx_bi_encoder(job: dict[str, Any]) -> dict[str, Any]:
    import mlx.core as mx
    from mlx.utils import tree_flatten

    from mlx_cross_encoder import MLXEmbedder
    from mlx_cross_encoder.training.infonce import InfoNCETrainer

    settings, examples = infonce_settings(job), job_examples(job)
    embedder = MLXEmbedder(_base_dir(job), max_length=job["settings"]["max_length"], dtype="float32")
    trainer = InfoNCETrainer(embedder, settings)
    trainable = sum(v.size for _, v in tree_flatten(trainer.module.trainable_parameters()))
    evaluate = dev_evaluator(job, lambda texts: embedder.encode(texts, batch_size=job["settings"]["eval_batch_size"]))
    summary = trainer.train(examples, evaluate=evaluate, metric=job["dev_metric"])
    model_dir = embedder.save_pretrained(Path(job["output_dir"]) / "model")
    device = "mlx-gpu" if mx.default_device().type == mx.gpu else "mlx-cpu"
    return {
        **_summary(job, summary, examples, settings, device, trainable),
        "peak_memory_mb": summary["peak_memory_mb"],
        "peak_memory_measure": "mx.get_peak_memory() during training and its dev evaluations (weights, gradients, "
        "optimizer state, activations)",
        "model_dir": str(model_dir),
        "trainer": "mlx_cross_encoder.training.infonce.InfoNCETrainer (MLXEmbedder)",
        "mlx_pad_multiple": summary["pad_multiple"],  # speed knobs as resolved on the device (same losses)
        "mlx_compiled_step": summary["compiled_step"],
    }


def train_torch_bi_encoder(job: dict[str, Any]) -> dict[str, Any]:
    from sentence_transformers import SentenceTransformer

    from .bi_encoder_torch import merge_lora, train_sentence_transformer

    settings, examples = infonce_settings(job), job_examples(job)
    device = _torch_device()
    model = SentenceTransformer(str(_base_dir(job)), device=device, local_files_only=True)
    if job["settings"]["max_length"] is not None:  # as MLXEmbedder(max_length=...): the recipe's, not the folder's
        model.max_seq_length = job["settings"]["max_length"]
    batch = job["settings"]["eval_batch_size"]
    evaluate = dev_evaluator(job, lambda texts: model.encode(texts, batch_size=batch, show_progress_bar=False))
    summary = train_sentence_transformer(model, examples, settings, evaluate=evaluate, metric=job["dev_metric"])
    trainable = int(sum(p.numel() for p in model.parameters() if p.requires_grad))  # LoRA: the adapters
    merge_lora(model)  # LoRA: adapters folded into the weights (a plain folder); full: nothing to do
    model_dir = Path(job["output_dir"]) / "model"
    model.save(str(model_dir))
    return {
        **_summary(job, summary, examples, settings, device, trainable),
        "peak_memory_mb": summary["peak_memory_mb"],
        "peak_memory_measure": "torch.cuda.max_memory_allocated() (CUDA only; None on CPU: see peak_rss_mb)",
        "model_dir": str(model_dir),
        "trainer": "sentence_transformers MultipleNegativesRankingLoss (harness.train.bi_encoder_torch)",
    }
