"""The suite's ``train:`` section (documented in docs/suites.md): training data, dev split, recipe, models.

A recipe is the one training-settings model, ``mlx_cross_encoder.training.settings.TrainingSettings`` (same names
and defaults as the MLX and torch trainers), plus how the training data is sampled (``max_pairs``,
``dev_max_docs``): ``TrainRecipe``. ``RecipeInput`` checks a recipe mapping with the suite's wording first
(``epochs`` is read as ``num_epochs``, its older suite name). A model's recipe is the section's recipe with the
model's own keys over it (``TrainSpec.prepare``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from mlx_cross_encoder.training.settings import LOSSES, LR_SCHEDULERS, TEACHER_LOSSES, TrainingSettings

from ..backends.registry import trainable_backends
from ..records import Checked, Record
from . import checks as C
from .models import FINE_TUNES, TRAIN_KINDS, File, ModelRef, Name, NonNegInt, OptPositiveInt, OptText, PositiveInt

TRAIN_SOURCES = ("candidates", "jsonl", "tribrid_triplets")
#: TrainingSettings keys a suite does not set: the harness or the model entry does (fine_tune, lora_*)
HARNESS_SET = (
    "output_dir",
    "fine_tune_type",
    "lora_rank",
    "lora_alpha",
    "lora_dropout",
    "metric_for_best",
    "greater_is_better",
    "load_best_model_at_end",
    "resume_from_checkpoint",
    "show_progress_bar",
)
OLD_NAMES = {"epochs": "num_epochs"}


CANDIDATES = ("judged", "all")


class TrainRecipe(TrainingSettings):
    """The recipe both backends train with: the shared training settings, and the data sampling."""

    max_pairs: OptPositiveInt = None  # training pairs sampled deterministically (seed) from the train split
    dev_max_docs: OptPositiveInt = None  # judged documents kept per dev query (stratified by label, seeded)
    # which candidates of a candidates+qrels source become pairs, for training and dev: "judged" (those with a
    # judgment) or "all" (every candidate of a judged query; unjudged ones are negatives, grade 0, as the test
    # metric counts them, so dev ranks each dev query's full candidate list)
    candidates: Literal["judged", "all"] = "judged"


def _num(minimum: float, maximum: float | None, what: str, **kw) -> Checked:
    return Checked(C.number(minimum, maximum, what, **kw))


def _opt_num(minimum: float, what: str, **kw) -> Checked:
    return Checked(C.optional(C.number(minimum, None, what, **kw)))


class RecipeInput(Record):
    """A recipe mapping as written in a suite: the common keys checked with the suite's wording, any other
    TrainingSettings key checked by TrainingSettings itself (``recipe()``)."""

    model_config = ConfigDict(extra="allow")
    loss: Annotated[str | None, Checked(C.choice(*LOSSES))] = None
    epochs: PositiveInt | None = None
    num_epochs: PositiveInt | None = None
    max_steps: OptPositiveInt = None
    learning_rate: Annotated[float | None, _num(0.0, None, "a positive number", open_min=True)] = None
    weight_decay: Annotated[float | None, _num(0.0, None, "a non-negative number")] = None
    batch_size: PositiveInt | None = None
    gradient_accumulation_steps: PositiveInt | None = None
    warmup_ratio: Annotated[float | None, _num(0.0, 1.0, "a number in [0, 1]")] = None
    lr_scheduler: Annotated[str | None, Checked(C.choice(*LR_SCHEDULERS))] = None
    max_grad_norm: Annotated[float | None, _opt_num(0.0, "a positive number or null", open_min=True)] = None
    max_length: Annotated[int | None, Checked(C.optional(C.integer(2, "an integer >= 2 or null")))] = None
    eval_steps: OptPositiveInt = None
    eval_batch_size: PositiveInt | None = None
    group_size: Annotated[int | None, Checked(C.integer(2, "an integer >= 2"))] = None
    temperature: Annotated[float | None, _num(0.0, None, "a positive number", open_min=True)] = None
    pos_weight: Annotated[float | None, _opt_num(0.0, "a positive number or null", open_min=True)] = None
    seed: NonNegInt | None = None
    max_pairs: OptPositiveInt = None
    dev_max_docs: OptPositiveInt = None
    candidates: Annotated[str | None, Checked(C.choice(*CANDIDATES))] = None

    @classmethod
    def input_keys(cls) -> list[str]:
        return [*OLD_NAMES, *(k for k in TrainRecipe.model_fields if k not in HARNESS_SET)]

    @classmethod
    def cross_checks(cls, data: dict, info: ValidationInfo) -> Iterable[tuple[tuple, str]]:
        for old, new in OLD_NAMES.items():
            if old in data and new in data:
                yield (old,), f"give {new} or its older name {old}, not both"

    def recipe(self) -> TrainRecipe:
        values = {**self.model_dump(exclude_unset=True), **(self.model_extra or {})}
        for old, new in OLD_NAMES.items():
            if old in values:
                values[new] = values.pop(old)
        return TrainRecipe(**values)


def _recipe_of(v: Any, info: ValidationInfo) -> TrainRecipe:
    if isinstance(v, TrainingSettings):
        return v if isinstance(v, TrainRecipe) else TrainRecipe(**v.model_dump())
    return RecipeInput.model_validate(v, context=info.context).recipe()


class TrainSource(Record):
    """One training source: judged pairs of a candidate list (``candidates`` + ``qrels``), a JSONL file, or
    TriBridRAG's triplet JSONL of corpus-relative paths (``tribrid_triplets`` + ``corpus_root``,
    harness.train.tribrid_data)."""

    derived_fields = ("kind",)
    kind: str = ""  # derived: "candidates" | "jsonl" | "tribrid_triplets"
    candidates: File = None
    qrels: File = None
    jsonl: File = None
    tribrid_triplets: File = None
    corpus_root: Annotated[Path | None, Checked(C.optional(C.path("dir")))] = None

    @model_validator(mode="after")
    def _derive(self) -> TrainSource:
        if not self.kind:
            given = [k for k in TRAIN_SOURCES if getattr(self, k) is not None]
            self.kind = given[0] if given else "jsonl"
        return self

    def describe(self) -> str:
        if self.kind == "tribrid_triplets":
            return f"{self.tribrid_triplets} (corpus {self.corpus_root})"
        return f"{self.candidates} + {self.qrels}" if self.kind == "candidates" else str(self.jsonl)

    @classmethod
    def cross_checks(cls, data: dict, info: ValidationInfo) -> Iterable[tuple[tuple, str]]:
        given = [k for k in TRAIN_SOURCES if data.get(k) is not None]
        if len(given) != 1:
            yield (
                (),
                "needs exactly one source: candidates (with qrels) or jsonl"
                + (" or tribrid_triplets (with corpus_root)" if "tribrid_triplets" in given else "")
                + (f" (got {', '.join(given)})" if given else ""),
            )
        elif given[0] == "candidates" and data.get("qrels") is None:
            yield ("qrels",), "missing (required with candidates: the judgments give the labels)"
        elif given[0] == "jsonl" and data.get("qrels") is not None:
            yield ("qrels",), "not used with jsonl (its records carry their labels)"
        if given == ["tribrid_triplets"] and data.get("corpus_root") is None:
            yield ("corpus_root",), "missing (required with tribrid_triplets: the folder its paths are relative to)"
        elif given and given != ["tribrid_triplets"] and data.get("corpus_root") is not None:
            yield ("corpus_root",), "only used with tribrid_triplets"


class TrainModelSpec(Record):
    name: Name
    base: ModelRef  # Hub id, absolute path or local:<name>
    kind: Annotated[str, Checked(C.choice(*TRAIN_KINDS))] = "cross_encoder"
    fine_tune: Annotated[str | None, Checked(C.optional(C.choice(*FINE_TUNES)))] = None  # None: full / lora (llm)
    lora_rank: Annotated[int | None, Checked(C.optional(C.integer(1, "a positive integer")))] = None
    lora_alpha: Annotated[float | None, _opt_num(0.0, "a positive number", open_min=True)] = None
    lora_dropout: Annotated[
        float | None, Checked(C.optional(C.number(0.0, 1.0, "a number in [0, 1)", open_max=True)))
    ] = None
    backends: Annotated[list[str], Checked(C.distinct_choices(*trainable_backends()))] = Field(
        default_factory=lambda: list(trainable_backends())
    )
    recipe: TrainRecipe = Field(default_factory=TrainRecipe)  # the section's recipe with this model's keys over it
    datasets: Annotated[list[str] | None, Checked(C.optional(C.name_list))] = None  # evaluated on (None: all)
    batch_size: PositiveInt = 32  # evaluation batch size
    instruction: OptText = None  # LLM rerankers: the prompt's instruction (None: the template's default)

    @field_validator("recipe", mode="before")
    @classmethod
    def _recipe(cls, v: Any, info: ValidationInfo) -> TrainRecipe:
        return _recipe_of(v, info)

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
    # dev pairs come only from these train.data entries (indices; None: all): e.g. the BM25 lists, so that dev
    # ranks what the test ranks (a BM25 top-100)
    sources: Annotated[list[int] | None, Checked(C.optional(C.nonempty_list()))] = None


class TrainSpec(Record):
    model_config = {"populate_by_name": True}
    sources: Annotated[list[TrainSource], Checked(C.nonempty_list())] = Field(alias="data")
    label_threshold: PositiveInt = 1
    dev: DevSplit = Field(default_factory=DevSplit)
    # teacher scores for distillation (margin_mse, listwise_kl, mse): a TREC run 'qid Q0 docid rank score tag'
    # over the candidates of the candidates+qrels sources (harness.train.teacher writes one)
    teacher: File = None
    recipe: TrainRecipe = Field(default_factory=TrainRecipe)
    models: Annotated[list[TrainModelSpec], Checked(C.nonempty_list())]

    @field_validator("recipe", mode="before")
    @classmethod
    def _recipe(cls, v: Any, info: ValidationInfo) -> TrainRecipe:
        return _recipe_of(v, info)

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
            if isinstance(m, dict) and (m.get("recipe") is None or isinstance(m.get("recipe"), dict))
            else m
            for m in data["models"]
        ]
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
        dev = data.get("dev") if isinstance(data.get("dev"), dict) else {}
        for j, index in enumerate(dev.get("sources") or []):
            if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(sources):
                yield ("dev", "sources", j), f"{index!r} is not an index of train.data (0..{len(sources) - 1})"
        judged = data.get("teacher") is None and any(
            isinstance(s, dict) and s.get("candidates") is not None for s in sources
        )
        section = data.get("recipe") if isinstance(data.get("recipe"), dict) else {}
        for i, m in enumerate(models):
            own = m.get("recipe") if isinstance(m, dict) and isinstance(m.get("recipe"), dict) else {}
            loss = own.get("loss", section.get("loss", "bce"))
            if judged and loss in TEACHER_LOSSES:
                where = ("models", i, "recipe", "loss") if "loss" in own else ("recipe", "loss")
                yield (
                    where,
                    (
                        f"loss {loss!r} needs teacher scores, which judged pairs from candidates + qrels do "
                        "not have; name a teacher run (train.teacher) or use bce or listwise"
                    ),
                )
