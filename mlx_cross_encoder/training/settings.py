"""The one training-settings model: every knob a reranker trainer reads, with one name and one default each.

``TrainingSettings`` is shared by the MLX trainers (their configs, :mod:`.config`, add only what is specific to
a model family: where the model comes from, its dtype, the LLM prompt), the PyTorch baselines
(``harness.train``) and a suite's ``train.recipe``. It is a pydantic v2 model that imports neither MLX nor
torch, so the harness can validate a suite, and a measuring parent can build a job, without loading either.

Steps are optimizer updates: one update per ``gradient_accumulation_steps`` micro-batches of ``batch_size``
examples (pairs for ``bce``/``mse``, query groups of ``group_size`` documents for ``listwise``/``margin_mse``/
``listwise_kl``).
The gradient of an update is the example-weighted mean over its micro-batches (micro-batches of unequal size
count by their examples), so accumulating N micro-batches equals one batch of all their examples.

Defaults follow Hugging Face's Trainer where it has the knob (AdamW betas/eps, seed 42, linear decay, clipping
at 1.0, weight decay 0.01 with no decay on biases and norms) and FlagEmbedding's reranker recipe for the warmup
(10% of the updates).
"""

from __future__ import annotations

import math
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: losses that score single pairs / query groups, and those that need teacher scores
POINTWISE_LOSSES = ("bce", "mse")
GROUPED_LOSSES = ("listwise", "margin_mse", "listwise_kl")
LOSSES = ("bce", "listwise", "margin_mse", "mse", "listwise_kl")
TEACHER_LOSSES = ("mse", "margin_mse", "listwise_kl")
LR_SCHEDULERS = ("linear", "cosine", "constant")
FINE_TUNE_TYPES = ("full", "lora")
#: the fine-tuning type a model family gets when ``fine_tune_type`` is not set
FAMILY_FINE_TUNE = {"cross_encoder": "full", "llm": "lora"}

Loss = Literal["bce", "listwise", "margin_mse", "mse", "listwise_kl"]
LRScheduler = Literal["linear", "cosine", "constant"]
FineTuneType = Literal["full", "lora"]
PositiveInt = Annotated[int, Field(ge=1)]
OptPositiveInt = Annotated[int | None, Field(ge=1)]
PositiveFloat = Annotated[float, Field(gt=0)]


class TrainingSettings(BaseModel):
    """How a reranker is trained (see the module docstring). Unknown names are refused."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
    #: the model family these settings train (a family config sets it; None: not known yet)
    family: ClassVar[str | None] = None

    output_dir: str = "reranker-output"
    # loss
    loss: Loss = "bce"
    pos_weight: Annotated[float | None, Field(gt=0)] = None  # bce: weight of the positive term
    group_size: Annotated[int, Field(ge=2)] = 8  # listwise / margin_mse: 1 positive + group_size-1 negatives
    temperature: PositiveFloat = 1.0  # listwise / listwise_kl: softmax(scores / temperature)
    teacher_temperature: PositiveFloat = 1.0  # listwise_kl: the target is softmax(teacher / teacher_temperature)
    # optimisation
    learning_rate: PositiveFloat = 2e-5
    weight_decay: Annotated[float, Field(ge=0)] = 0.01  # not on biases and norm weights
    adam_betas: tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]] = (0.9, 0.999)
    adam_eps: PositiveFloat = 1e-8
    num_epochs: PositiveInt = 1
    max_steps: OptPositiveInt = None  # overrides num_epochs
    batch_size: PositiveInt = 16
    gradient_accumulation_steps: PositiveInt = 1
    lr_scheduler: LRScheduler = "linear"
    warmup_ratio: Annotated[float, Field(ge=0, le=1)] = 0.1
    warmup_steps: Annotated[int | None, Field(ge=0)] = None  # overrides warmup_ratio
    max_grad_norm: Annotated[float | None, Field(ge=0)] = 1.0  # global-norm clipping; None or 0 disables
    max_length: Annotated[int | None, Field(ge=2)] = None  # tokens per pair (None: the model's limit)
    # what trains
    fine_tune_type: FineTuneType | None = None  # None: the family's usual one (full for encoders, lora for LLMs)
    lora_rank: PositiveInt = 8
    lora_alpha: PositiveFloat = 16.0
    lora_dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0
    lora_target_modules: tuple[str, ...] | None = None  # None: the model family's usual targets
    quantize: Literal[4, 8] | None = None  # LoRA on a base quantized to 4 or 8 bits (QLoRA)
    # evaluation, checkpoints, logging
    eval_steps: OptPositiveInt = None  # evaluate every N updates (None: at each epoch's end), and after the last
    eval_batch_size: PositiveInt = 32
    metric_for_best: str = "ndcg@10"
    greater_is_better: bool = True
    early_stopping_patience: OptPositiveInt = None  # evaluations without improvement before stopping
    early_stopping_threshold: Annotated[float, Field(ge=0)] = 0.0
    load_best_model_at_end: bool = True
    save_steps: OptPositiveInt = None  # checkpoint every N updates (None: at each evaluation and at the end)
    save_total_limit: OptPositiveInt = 2
    resume_from_checkpoint: bool | str = False  # True: the latest in output_dir; or a checkpoint path
    logging_steps: PositiveInt = 10
    show_progress_bar: bool = True
    seed: Annotated[int, Field(ge=0)] = 42

    @model_validator(mode="after")
    def _quantized_full(self) -> TrainingSettings:
        if self.quantize and self.fine_tune_type == "full":
            raise ValueError("full fine-tuning of a quantized model is not supported; use fine_tune_type='lora'")
        return self

    def fine_tune(self, family: str | None = None) -> FineTuneType:
        """``fine_tune_type``, or the usual one of the model family (``cross_encoder``: full, ``llm``: lora)."""
        family = family or self.family
        if self.fine_tune_type is not None:
            return self.fine_tune_type
        if family not in FAMILY_FINE_TUNE:
            raise ValueError(f"fine_tune_type is not set and the model family {family!r} has no default")
        return FAMILY_FINE_TUNE[family]

    def warmup_updates(self, total_steps: int) -> int:
        """Warmup length in updates: ``warmup_steps``, else ``ceil(warmup_ratio * total_steps)``."""
        if self.warmup_steps is not None:
            return self.warmup_steps
        return math.ceil(round(self.warmup_ratio * total_steps, 9))  # 0.1 * 30 is 3, not 3.0000000000000004

    def selection_value(self, metrics: dict[str, float]) -> float:
        """The dev value that chooses the best checkpoint: ``metrics[metric_for_best]`` (a KeyError naming the
        metrics there when it is absent). The MLX trainers and the PyTorch baselines select by this rule."""
        if self.metric_for_best not in metrics:
            raise KeyError(f"metric_for_best={self.metric_for_best!r} is not among the metrics {sorted(metrics)}")
        return metrics[self.metric_for_best]

    def improves(self, value: float, best: float | None) -> bool:
        """Whether a dev value is a new best: the first one, or better than ``best`` (higher when
        ``greater_is_better``, else lower) by more than ``early_stopping_threshold``."""
        sign = 1.0 if self.greater_is_better else -1.0
        return best is None or sign * (value - best) > self.early_stopping_threshold

    def settings(self) -> TrainingSettings:
        """The shared settings alone (a model-family config without its own fields)."""
        names = TrainingSettings.model_fields
        return TrainingSettings(**{k: v for k, v in self.model_dump().items() if k in names})
