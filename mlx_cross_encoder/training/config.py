"""Training recipes: the knobs shared by every trainer, and the per-model configs of the public API."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .losses import LOSSES
from .schedule import SCHEDULERS


@dataclass
class TrainingConfig:
    """Knobs shared by the MLX trainers (and mirrored by ``harness.train_torch``).

    Steps are optimizer updates: one update per ``gradient_accumulation_steps`` micro-batches of
    ``batch_size`` examples (pairs for ``bce``/``mse``, query groups of ``group_size`` documents for
    ``listwise``/``margin_mse``).
    """

    output_dir: str = "mlx-reranker-output"
    # loss
    loss: str = "bce"  # bce | listwise | margin_mse | mse
    pos_weight: float | None = None  # bce: weight of the positive term
    group_size: int = 8  # listwise / margin_mse: documents per query (1 positive + group_size-1 negatives)
    temperature: float = 1.0  # listwise
    # optimisation
    learning_rate: float = 2e-5
    weight_decay: float = 0.01
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    num_epochs: int = 1
    max_steps: int | None = None  # overrides num_epochs
    batch_size: int = 16
    gradient_accumulation_steps: int = 1
    lr_scheduler: str = "linear"  # linear | cosine | constant
    warmup_ratio: float = 0.0
    warmup_steps: int | None = None  # overrides warmup_ratio
    max_grad_norm: float | None = 1.0  # global-norm clipping; None or 0 disables
    max_length: int | None = None  # tokens per pair (default: the model's)
    # fine-tuning type
    fine_tune_type: str = "lora"  # lora | full
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_target_modules: tuple[str, ...] | None = None  # default: the model family's usual targets
    quantize: int | None = None  # 4 / 8: LoRA on a quantized base (QLoRA)
    # evaluation, checkpoints, logging
    eval_steps: int | None = None  # evaluate every N steps (None: at the end of each epoch)
    eval_batch_size: int = 32
    metric_for_best: str = "ndcg@10"
    greater_is_better: bool = True
    early_stopping_patience: int | None = None  # evaluations without improvement before stopping
    early_stopping_threshold: float = 0.0
    load_best_model_at_end: bool = True
    save_steps: int | None = None  # checkpoint every N steps (None: at each evaluation and at the end)
    save_total_limit: int | None = 2
    resume_from_checkpoint: bool | str = False  # True: the latest in output_dir; or a checkpoint path
    logging_steps: int = 10
    show_progress_bar: bool = True
    seed: int = 42

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; use one of {LOSSES}")
        if self.lr_scheduler not in SCHEDULERS:
            raise ValueError(f"unknown lr_scheduler {self.lr_scheduler!r}; use one of {SCHEDULERS}")
        if self.fine_tune_type not in ("lora", "full"):
            raise ValueError(f"fine_tune_type must be 'lora' or 'full', got {self.fine_tune_type!r}")
        if self.fine_tune_type == "full" and self.quantize:
            raise ValueError("full fine-tuning of a quantized model is not supported; use fine_tune_type='lora'")
        for name in ("batch_size", "gradient_accumulation_steps", "num_epochs", "eval_batch_size", "logging_steps"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lora_target_modules is not None:
            self.lora_target_modules = tuple(self.lora_target_modules)
        self.adam_betas = tuple(self.adam_betas)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class MLXCrossEncoderConfig(TrainingConfig):
    """Recipe for :class:`~mlx_cross_encoder.MLXCrossEncoderTrainer` (encoder cross-encoders).

    ``pretrained_path`` is loaded when the trainer is given no model. Full fine-tuning is the default for
    these small encoders; with ``fine_tune_type="lora"`` the classification head (``trainable_modules``,
    default the model's ``head_prefixes``) is trained in full and saved with the adapter.
    """

    pretrained_path: str | None = None
    output_dir: str = "mlx-cross-encoder-output"
    fine_tune_type: str = "full"
    trainable_modules: tuple[str, ...] | None = None
    dtype: str = "float32"


@dataclass
class Qwen3RerankerConfig(TrainingConfig):
    """Recipe for :class:`~mlx_cross_encoder.Qwen3RerankerTrainer` (LLM yes/no rerankers, LoRA by default).

    ``lora_num_layers``: LoRA on the last N decoder blocks (-1: all), as mlx-lm's ``--num-layers``.
    """

    model_name: str = "Qwen/Qwen3-Reranker-0.6B"
    output_dir: str = "qwen3-reranker-lora"
    instruction: str | None = None
    lora_num_layers: int = -1
    lora_rank: int = 16
    lora_alpha: float = 32.0
    dtype: str = "float32"
    batch_size: int = 4
    learning_rate: float = 2e-5
