"""The suite's ``train:`` section (documented in docs/suites.md): training data, dev split, recipe, models.

``TrainRecipe`` stays a plain dataclass (harness/training.py reads it with ``dataclasses.asdict``) until the one
training-settings model of ``mlx_cross_encoder.training.settings`` replaces it; ``RecipeInput`` validates a
recipe mapping with the suite's wording. A model's recipe is the section's recipe with the model's own keys over
it (``TrainSpec.prepare``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from ..backends.registry import BACKENDS
from ..records import Checked, Record
from . import checks as C
from .models import (
    FINE_TUNES,
    LR_SCHEDULERS,
    TEACHER_LOSSES,
    TRAIN_KINDS,
    TRAIN_LOSSES,
    File,
    ModelRef,
    Name,
    NonNegInt,
    OptPositiveInt,
    OptText,
    PositiveInt,
)

TRAIN_SOURCES = ("candidates", "jsonl")


@dataclass
class TrainRecipe:
    """The recipe both backends train with (names as in the suite; ``epochs`` is the trainers' num_epochs)."""

    loss: str = "bce"
    epochs: int = 1
    max_steps: int | None = None
    learning_rate: float = 2e-5
    weight_decay: float = 0.01
    batch_size: int = 16
    gradient_accumulation_steps: int = 1
    warmup_ratio: float = 0.1
    lr_scheduler: str = "linear"
    max_grad_norm: float | None = 1.0
    max_length: int = 256
    eval_steps: int | None = None  # None: evaluate on the dev split at the end of each epoch (and after the last step)
    eval_batch_size: int = 32
    group_size: int = 8
    temperature: float = 1.0
    pos_weight: float | None = None
    seed: int = 0
    max_pairs: int | None = None  # training pairs sampled deterministically (seed) from the train split
    dev_max_docs: int | None = None  # judged documents kept per dev query (stratified by label, seeded)


def _num(minimum: float, maximum: float | None, what: str, **kw) -> Checked:
    return Checked(C.number(minimum, maximum, what, **kw))


def _opt_num(minimum: float, what: str, **kw) -> Checked:
    return Checked(C.optional(C.number(minimum, None, what, **kw)))


class RecipeInput(Record):
    """A recipe mapping as written in a suite (every key optional; defaults are TrainRecipe's)."""

    loss: Annotated[str, Checked(C.choice(*TRAIN_LOSSES))] = "bce"
    epochs: PositiveInt = 1
    max_steps: OptPositiveInt = None
    learning_rate: Annotated[float, Field(gt=0), _num(0.0, None, "a positive number", open_min=True)] = 2e-5
    weight_decay: Annotated[float, Field(ge=0), _num(0.0, None, "a non-negative number")] = 0.01
    batch_size: PositiveInt = 16
    gradient_accumulation_steps: PositiveInt = 1
    warmup_ratio: Annotated[float, Field(ge=0, le=1), _num(0.0, 1.0, "a number in [0, 1]")] = 0.1
    lr_scheduler: Annotated[str, Checked(C.choice(*LR_SCHEDULERS))] = "linear"
    max_grad_norm: Annotated[float | None, _opt_num(0.0, "a positive number or null", open_min=True)] = 1.0
    max_length: Annotated[int, Field(ge=2), Checked(C.integer(2, "an integer >= 2"))] = 256
    eval_steps: OptPositiveInt = None
    eval_batch_size: PositiveInt = 32
    group_size: Annotated[int, Field(ge=2), Checked(C.integer(2, "an integer >= 2"))] = 8
    temperature: Annotated[float, Field(gt=0), _num(0.0, None, "a positive number", open_min=True)] = 1.0
    pos_weight: Annotated[float | None, _opt_num(0.0, "a positive number or null", open_min=True)] = None
    seed: NonNegInt = 0
    max_pairs: OptPositiveInt = None
    dev_max_docs: OptPositiveInt = None

    def recipe(self) -> TrainRecipe:
        return TrainRecipe(**self.model_dump())


class TrainSource(Record):
    """One training source: judged pairs of a candidate list (``candidates`` + ``qrels``) or a JSONL file."""

    derived_fields = ("kind",)
    kind: str = ""  # derived: "candidates" | "jsonl"
    candidates: File = None
    qrels: File = None
    jsonl: File = None

    @model_validator(mode="after")
    def _derive(self) -> TrainSource:
        if not self.kind:
            self.kind = "candidates" if self.candidates is not None else "jsonl"
        return self

    def describe(self) -> str:
        return f"{self.candidates} + {self.qrels}" if self.kind == "candidates" else str(self.jsonl)

    @classmethod
    def cross_checks(cls, data: dict, info: ValidationInfo) -> Iterable[tuple[tuple, str]]:
        given = [k for k in TRAIN_SOURCES if data.get(k) is not None]
        if len(given) != 1:
            yield (), "needs exactly one source: candidates (with qrels) or jsonl" + (
                f" (got {', '.join(given)})" if given else ""
            )
        elif given[0] == "candidates" and data.get("qrels") is None:
            yield ("qrels",), "missing (required with candidates: the judgments give the labels)"
        elif given[0] == "jsonl" and data.get("qrels") is not None:
            yield ("qrels",), "not used with jsonl (its records carry their labels)"


class TrainModelSpec(Record):
    name: Name
    base: ModelRef  # Hub id, absolute path or local:<recipe>
    kind: Annotated[str, Checked(C.choice(*TRAIN_KINDS))] = "cross_encoder"
    fine_tune: Annotated[str | None, Checked(C.optional(C.choice(*FINE_TUNES)))] = None  # None: full / lora (llm)
    lora_rank: Annotated[int | None, Checked(C.optional(C.integer(1, "a positive integer")))] = None
    lora_alpha: Annotated[float | None, _opt_num(0.0, "a positive number", open_min=True)] = None
    lora_dropout: Annotated[float | None, Checked(C.optional(C.number(0.0, 1.0, "a number in [0, 1)",
                                                                      open_max=True)))] = None  # fmt: skip
    backends: Annotated[list[str], Checked(C.distinct_choices(*BACKENDS))] = Field(
        default_factory=lambda: list(BACKENDS)
    )
    recipe: TrainRecipe = Field(default_factory=TrainRecipe)
    datasets: Annotated[list[str] | None, Checked(C.optional(C.name_list))] = None  # evaluated on (None: all)
    batch_size: PositiveInt = 32  # evaluation batch size
    instruction: OptText = None  # LLM rerankers: the prompt's instruction (None: the template's default)

    @field_validator("recipe", mode="before")
    @classmethod
    def _recipe(cls, v: Any, info: ValidationInfo) -> TrainRecipe:
        return v if isinstance(v, TrainRecipe) else RecipeInput.model_validate(v, context=info.context).recipe()

    @model_validator(mode="after")
    def _defaults(self) -> TrainModelSpec:
        self.fine_tune = self.fine_tune or ("lora" if self.kind == "llm" else "full")
        self.lora_rank = self.lora_rank or 8
        self.lora_alpha = self.lora_alpha if self.lora_alpha is not None else 2.0 * self.lora_rank
        self.lora_dropout = self.lora_dropout or 0.0
        return self

    def reranker_name(self, backend: str) -> str:
        return f"{self.name}-{backend}"

    @classmethod
    def cross_checks(cls, data: dict, info: ValidationInfo) -> Iterable[tuple[tuple, str]]:
        kind = data.get("kind", "cross_encoder")
        fine_tune = data.get("fine_tune") or ("lora" if kind == "llm" else "full")
        if fine_tune != "lora":
            for key in ("lora_rank", "lora_alpha", "lora_dropout"):
                if data.get(key) is not None:
                    yield (key,), f"only used with fine_tune: lora (this model is fine_tune: {fine_tune})"
        if data.get("instruction") is not None and kind != "llm":
            yield ("instruction",), "only used with kind: llm (a cross-encoder has no prompt)"
        dataset_names = (info.context or {}).get("dataset_names")
        names = data.get("datasets")
        if dataset_names is not None and isinstance(names, list):
            for j, n in enumerate(names):
                if isinstance(n, str) and n not in dataset_names:
                    yield ("datasets", j), f"{n!r} is not one of the datasets ({', '.join(map(str, dataset_names))})"


class DevSplit(Record):
    fraction: Annotated[float, Field(ge=0, lt=1), _num(0.0, 1.0, "a number in [0, 1)", open_max=True)] = 0.2
    seed: NonNegInt = 0


class TrainSpec(Record):
    model_config = {"populate_by_name": True}
    sources: Annotated[list[TrainSource], Checked(C.nonempty_list())] = Field(alias="data")
    label_threshold: PositiveInt = 1
    dev: DevSplit = Field(default_factory=DevSplit)
    recipe: TrainRecipe = Field(default_factory=TrainRecipe)
    models: Annotated[list[TrainModelSpec], Checked(C.nonempty_list())]

    @field_validator("recipe", mode="before")
    @classmethod
    def _recipe(cls, v: Any, info: ValidationInfo) -> TrainRecipe:
        return v if isinstance(v, TrainRecipe) else RecipeInput.model_validate(v, context=info.context).recipe()

    def reranker_names(self) -> list[str]:
        return [m.reranker_name(b) for m in self.models for b in m.backends]

    @classmethod
    def prepare(cls, data: dict, info: ValidationInfo) -> dict:
        """Each model's recipe: the section's valid recipe keys, then the model's own (errors reported once)."""
        section = data.get("recipe")
        if not isinstance(section, dict) or not isinstance(data.get("models"), list):
            return data
        try:
            RecipeInput.model_validate(section, context=info.context)
            bad: set = set()
        except ValidationError as exc:
            bad = {e["loc"][0] for e in exc.errors() if e["loc"]}
        inherited = {k: v for k, v in section.items() if k not in bad}
        models = [
            {**m, "recipe": {**inherited, **m["recipe"]} if isinstance(m.get("recipe"), dict) else inherited}
            if isinstance(m, dict) and (m.get("recipe") is None or isinstance(m.get("recipe"), dict)) else m
            for m in data["models"]
        ]  # fmt: skip
        return {**data, "models": models}

    @classmethod
    def cross_checks(cls, data: dict, info: ValidationInfo) -> Iterable[tuple[tuple, str]]:
        models = data.get("models") if isinstance(data.get("models"), list) else []
        seen: dict[str, int] = {}
        for i, m in enumerate(models):
            n = m.get("name") if isinstance(m, dict) else None
            if isinstance(n, str):
                if n in seen:
                    yield ("models", i, "name"), f"duplicate name {n!r} (also train.models[{seen[n]}])"
                seen.setdefault(n, i)
        sources = data.get("data") if isinstance(data.get("data"), list) else []
        judged = any(isinstance(s, dict) and s.get("candidates") is not None for s in sources)
        section = data.get("recipe") if isinstance(data.get("recipe"), dict) else {}
        for i, m in enumerate(models):
            own = m.get("recipe") if isinstance(m, dict) and isinstance(m.get("recipe"), dict) else {}
            loss = own.get("loss", section.get("loss", "bce"))
            if judged and loss in TEACHER_LOSSES:
                where = ("models", i, "recipe", "loss") if "loss" in own else ("recipe", "loss")
                yield where, (f"loss {loss!r} needs teacher scores, which judged pairs from candidates + qrels do "
                              "not have; use bce or listwise")  # fmt: skip
