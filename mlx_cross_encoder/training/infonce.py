"""InfoNCE training of embedders (``MLXEmbedder``): in-batch and hard negatives, temperature, full or LoRA.

The loss is sentence-transformers' ``MultipleNegativesRankingLoss`` in its default form (``query_to_doc``, one
joint softmax): for a batch of ``B`` examples ``(query, positive, k hard negatives)`` every query is scored against
all ``B * (1 + k)`` documents of the batch, ``scale * cos(q_i, d_j)`` (``scale = 1 / temperature``, 20 by
default), and the loss is the mean cross-entropy of the own positive:
``mean_i [logsumexp_j(s_ij) - s_ii]``. Documents are laid out as sentence-transformers does: the ``B`` positives,
then the first hard negative of every example, then the second, ...

Batches are formed by :func:`batch_order` (numpy only, seeded, the same order for the PyTorch twin): examples are
shuffled per epoch and a batch never holds two examples of the same query, since that query's other positive
would then be an in-batch "negative" (sentence-transformers' ``NO_DUPLICATES`` idea, keyed by query).

Fine-tuning: ``full`` (every encoder weight; an encoder folder's classification head, unused, stays frozen) or
``lora`` (mlx-lm ``LoRALinear`` on the attention projections: the model file's ``lora_targets`` for encoders,
``q_proj``/``k_proj``/``v_proj``/``o_proj`` for decoders, ``scale = alpha / rank``; ``A`` from
:func:`lora_a_init`, ``B = 0``). Decoders train LoRA only.
AdamW and the warmup + linear decay schedule are the cross-encoder trainers' (``training.schedule``). MLX is
imported by the functions that need it, so the PyTorch twin can import :func:`batch_order` without it.

Checkpoint selection (:class:`DevSelection`, shared with the PyTorch twin): given an ``evaluate()`` (the dev metrics
of the current weights), the trainer evaluates before the first update (step 0: the untrained model is a candidate),
every ``eval_steps`` updates and after the last one (:func:`eval_points`); the first best value of ``metric`` wins
(ties keep the earlier step) and its weights are put back at the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

DECODER_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass(frozen=True)
class InfoNCEExample:
    """One training example: a query, its positive document and ``k`` hard negatives (``k`` equal in a batch)."""

    query: str
    positive: str
    negatives: tuple[str, ...] = field(default_factory=tuple)
    qid: str = ""  # batches never hold two examples of one qid (defaults to the query text)


class InfoNCESettings(BaseModel):
    """The recipe; both stacks read the same record. Unknown names are refused."""

    model_config = ConfigDict(extra="forbid")
    scale: Annotated[float, Field(gt=0)] = 20.0  # 1 / temperature (sentence-transformers' default 20)
    batch_size: Annotated[int, Field(ge=2)] = 16
    epochs: Annotated[int, Field(ge=1)] = 1
    max_steps: Annotated[int | None, Field(ge=1)] = None  # overrides epochs: this many batches (epochs as needed)
    learning_rate: Annotated[float, Field(gt=0)] = 2e-5
    weight_decay: Annotated[float, Field(ge=0)] = 0.01
    warmup_ratio: Annotated[float, Field(ge=0, lt=1)] = 0.1
    fine_tune: Literal["full", "lora"] = "full"
    lora_rank: Annotated[int, Field(ge=1)] = 8
    lora_alpha: Annotated[float, Field(gt=0)] = 16.0
    lora_targets: tuple[str, ...] | None = None  # None: the model's attention projections
    seed: int = 0
    eval_steps: Annotated[int | None, Field(ge=1)] = None  # dev evaluation every N updates (+ step 0 and the last)
    # speed only (MLX side; the same losses): batch widths rounded up to a multiple of this many tokens (fewer
    # distinct shapes; the padding is masked; None = 1: exact widths), and the step (loss, gradients, AdamW update)
    # as one mx.compile graph (None: as the other MLX trainers' switch says, compiled_step.compile_mode(): only
    # with MLX_CROSS_ENCODER_TRAIN_COMPILE=1, which compiles their whole step). Neither is on by default: on the
    # H200 (session 6 DIAG, benchmarks/bi_encoder_step_profile.py)
    # padding to 32 made the MiniLM step slower with MLX's default CUDA graph size (95.9 vs 86.5 ms) and the compiled
    # step did not finish its 10 steps within 20 s.
    pad_multiple: Annotated[int | None, Field(ge=1)] = None
    compile_step: bool | None = None

    def resolved_speed(self) -> tuple[int, bool]:
        """``(pad_multiple, compile_step)`` with the defaults resolved: ``compile_step`` None follows
        ``compiled_step.compile_mode()`` (``MLX_CROSS_ENCODER_TRAIN_COMPILE``, same values and errors): compiled
        when it compiles the whole step (``1``); ``update`` compiles nothing here (this step has no separate
        update part)."""
        from .compiled_step import compile_mode

        return self.pad_multiple or 1, all(compile_mode()) if self.compile_step is None else self.compile_step

    def warmup_steps(self, total: int) -> int:
        return int(np.ceil(self.warmup_ratio * total))


def batch_order(examples: list[InfoNCEExample], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Batches (example indices) of one epoch: a seeded shuffle, then greedy filling that skips an example whose
    query is already in the open batch (it goes to a later batch). Only full batches are used (a short last batch
    would change the number of in-batch negatives), so up to ``batch_size - 1`` examples sit an epoch out."""
    order = np.random.default_rng([seed, epoch]).permutation(len(examples)).tolist()
    batches: list[list[int]] = []
    open_batches: list[tuple[list[int], set[str]]] = []
    for i in order:
        key = examples[i].qid or examples[i].query
        for members, keys in open_batches:
            if key not in keys:
                members.append(i)
                keys.add(key)
                break
        else:
            open_batches.append(([i], {key}))
        full = [b for b in open_batches if len(b[0]) == batch_size]
        batches += [members for members, _ in full]
        open_batches = [b for b in open_batches if len(b[0]) < batch_size]
    return batches


def training_batches(examples: list[InfoNCEExample], settings: InfoNCESettings) -> list[list[int]]:
    """Every batch of a training run in order: ``settings.epochs`` epochs of :func:`batch_order`, or, with
    ``max_steps``, the first ``max_steps`` batches of as many epochs as that takes."""
    if settings.max_steps is None:
        return [b for e in range(settings.epochs) for b in batch_order(examples, settings.batch_size, settings.seed, e)]
    batches: list[list[int]] = []
    epoch = 0
    while len(batches) < settings.max_steps:
        more = batch_order(examples, settings.batch_size, settings.seed, epoch)
        if not more:
            break
        batches += more
        epoch += 1
    return batches[: settings.max_steps]


def eval_points(total: int, eval_steps: int | None) -> list[int]:
    """Updates after which the dev set is evaluated: 0 (the untrained model), every ``eval_steps``, and ``total``."""
    every = range(eval_steps, total, eval_steps) if eval_steps else ()
    return [0, *every, total]


class DevSelection:
    """The best checkpoint on dev: ``run(step)`` evaluates the current weights (``evaluate() -> metrics``) and, when
    ``metric`` beats every earlier value (strictly: ties keep the earlier step), keeps ``snapshot()``; ``restore()``
    puts the kept weights back. Framework-free: the caller's ``snapshot`` / ``restore`` copy its weights."""

    def __init__(self, evaluate: Callable[[], dict[str, float]], snapshot: Callable[[], Any],
                 restore: Callable[[Any], None], metric: str = "ndcg@10"):  # fmt: skip
        self.evaluate, self.snapshot, self._restore, self.metric = evaluate, snapshot, restore, metric
        self.evaluations: list[dict[str, Any]] = []
        self.best_step: int | None = None
        self.best_metrics: dict[str, float] | None = None
        self.eval_time_s = 0.0
        self._kept: Any = None

    @property
    def best(self) -> float | None:
        return None if self.best_metrics is None else self.best_metrics[self.metric]

    def run(self, step: int) -> None:
        start = time.perf_counter()
        metrics = {k: float(v) for k, v in self.evaluate().items()}
        if self.metric not in metrics:
            raise KeyError(f"dev metric {self.metric!r} is not among the metrics {sorted(metrics)}")
        improved = self.best is None or metrics[self.metric] > self.best
        if improved:
            self.best_step, self.best_metrics, self._kept = step, metrics, self.snapshot()
        self.evaluations.append({"step": step, "metrics": metrics, "improved": improved})
        self.eval_time_s += time.perf_counter() - start

    def restore(self) -> None:
        if self._kept is not None:
            self._restore(self._kept)

    def summary(self) -> dict[str, Any]:
        return {"best_step": self.best_step, "best_metrics": self.best_metrics, "evaluations": self.evaluations,
                "eval_time_s": self.eval_time_s}  # fmt: skip


def lora_a_init(path: str, input_dims: int, rank: int, seed: int) -> np.ndarray:
    """The initial LoRA ``A`` of the module at ``path``, ``(input_dims, rank)`` float32: uniform in
    ``±1/sqrt(input_dims)`` (the distribution of mlx-lm's ``LoRALinear`` and of PEFT's Kaiming-uniform ``lora_A``),
    drawn from a generator seeded by ``seed`` and the path. Both stacks use it, so a decoder's twins (whose module
    paths are the Hugging Face names on both sides, e.g. ``layers.0.self_attn.q_proj``) start from the same
    adapters and train update for update. ``B`` starts at zero on both."""
    import zlib

    bound = 1.0 / np.sqrt(input_dims)
    rng = np.random.default_rng([seed, zlib.crc32(path.encode())])
    return rng.uniform(-bound, bound, size=(input_dims, rank)).astype(np.float32)


def pretokenize(encode, examples: list[InfoNCEExample], batches: list[list[int]]) -> dict:
    """``{text: encoding}`` of every distinct text the batches use, by one ``encode`` (``encode_batch``) call: a
    text repeated across batches and epochs is tokenized once (tokenization was ~20% of an H200 MiniLM step)."""
    texts = list(dict.fromkeys(t for b in batches for part in batch_texts(examples, b) for t in part))
    return dict(zip(texts, encode(texts), strict=True))


def batch_texts(examples: list[InfoNCEExample], batch: list[int]) -> tuple[list[str], list[str]]:
    """Queries and documents of a batch in the loss's layout (positives, then each hard-negative column)."""
    chosen = [examples[i] for i in batch]
    k = {len(e.negatives) for e in chosen}
    if len(k) != 1:
        raise ValueError(f"every example of a batch needs the same number of hard negatives, got {sorted(k)}")
    docs = [e.positive for e in chosen] + [e.negatives[j] for j in range(k.pop()) for e in chosen]
    return [e.query for e in chosen], docs


def infonce_loss(queries, docs, scale: float = 20.0):
    """``mean_i [logsumexp_j(scale * cos(q_i, d_j)) - scale * cos(q_i, d_i)]`` (MLX arrays; ``docs[:B]`` are the
    positives). sentence-transformers' ``MultipleNegativesRankingLoss`` with its defaults."""
    import mlx.core as mx

    q = queries / mx.maximum(mx.linalg.norm(queries, axis=-1, keepdims=True), 1e-12)
    d = docs / mx.maximum(mx.linalg.norm(docs, axis=-1, keepdims=True), 1e-12)
    scores = scale * (q @ d.T)
    n = q.shape[0]
    positive = scores[mx.arange(n), mx.arange(n)]
    return mx.mean(mx.logsumexp(scores, axis=1) - positive)


class InfoNCETrainer:
    """Trains an ``MLXEmbedder`` in place with :func:`infonce_loss`; ``train(examples)`` returns a summary."""

    def __init__(self, embedder, settings: InfoNCESettings | None = None):
        self.embedder = embedder
        self.settings = settings or InfoNCESettings()
        self.module = embedder.model.model if embedder.is_decoder else embedder.model  # the nn.Module trained
        self.adapter_config = self._setup()

    def _setup(self) -> dict:
        from .lora import apply_lora, lora_target_paths

        s, module = self.settings, self.module
        head = () if self.embedder.is_decoder else tuple(getattr(module, "head_prefixes", ()))
        if s.fine_tune == "full":
            if self.embedder.is_decoder:
                raise ValueError("decoder embedders train LoRA adapters (fine_tune='lora'), not every weight")
            module.unfreeze()
            modules = dict(module.named_modules())
            for prefix in head:
                if prefix in modules:
                    modules[prefix].freeze()  # the head of an encoder file: not part of the embedding
            return {"fine_tune_type": "full"}
        default = DECODER_LORA_TARGETS if self.embedder.is_decoder else getattr(module, "lora_targets", None)
        targets = s.lora_targets or default
        module.freeze()
        paths = lora_target_paths(module, targets, exclude=head)
        apply_lora(module, paths, s.lora_rank, s.lora_alpha / s.lora_rank)
        import mlx.core as mx

        modules = dict(module.named_modules())
        for path in paths:  # A from lora_a_init (the PyTorch twin draws the same), B = 0 (mlx-lm's, PEFT's)
            lora = modules[path]
            lora.lora_a = mx.array(lora_a_init(path, lora.lora_a.shape[0], s.lora_rank, s.seed))
        return {"fine_tune_type": "lora", "rank": s.lora_rank, "alpha": s.lora_alpha, "keys": paths}

    def _array_loss(self, q_ids, q_mask, d_ids, d_mask):
        """The loss of one batch of padded token arrays (what a training step differentiates)."""
        pooled = self.embedder.pooled
        return infonce_loss(pooled(q_ids, q_mask), pooled(d_ids, d_mask), self.settings.scale)

    def loss(self, queries: list[str], docs: list[str]):
        """The loss of one batch with the current weights (MLX scalar)."""
        encode, collate = self.embedder.tokenizer.encode_batch, self.embedder.collate
        return self._array_loss(*collate(encode(queries)), *collate(encode(docs)))

    def _step_fn(self, optimizer, compiled: bool | None = None):
        """``step(q_ids, q_mask, d_ids, d_mask) -> loss`` that updates the weights (lazily): value_and_grad + AdamW,
        compiled into one graph when ``compiled`` (None: ``settings.resolved_speed()``; the model and optimizer
        state are its in/outputs)."""
        import mlx.core as mx
        import mlx.nn as nn

        value_and_grad = nn.value_and_grad(self.module, self._array_loss)

        def step(*arrays):
            loss, grads = value_and_grad(*arrays)
            optimizer.update(self.module, grads)
            return loss

        if not (self.settings.resolved_speed()[1] if compiled is None else compiled):
            return step
        optimizer.init(self.module.trainable_parameters())  # the state trees exist before they are captured
        state = [self.module.state, optimizer.state]
        return mx.compile(step, inputs=state, outputs=state)

    def selection(self, evaluate: Callable[[], dict[str, float]], metric: str = "ndcg@10") -> DevSelection:
        """A :class:`DevSelection` over this trainer's trainable weights (MLX arrays are immutable: a snapshot
        holds the current arrays, which later updates replace rather than modify)."""
        from mlx.utils import tree_flatten

        def snapshot():
            return dict(tree_flatten(self.module.trainable_parameters()))

        return DevSelection(evaluate, snapshot, lambda kept: self.module.load_weights(list(kept.items()), strict=False),
                            metric)  # fmt: skip

    def train(self, examples: list[InfoNCEExample], log_every: int = 0,
              evaluate: Callable[[], dict[str, float]] | None = None, metric: str = "ndcg@10") -> dict:  # fmt: skip
        """Every epoch's full batches; returns losses, wall time (dev evaluations excluded), tokens/s, MLX peak
        memory and, with ``evaluate`` (the dev metrics of the current weights), the checkpoint selection:
        evaluations at :func:`eval_points`, the best step's weights restored at the end. On a GPU, MLX's buffer
        cache is bounded meanwhile (``training.gpu_memory.bounded_gpu_cache``, as the other MLX trainers: a
        training beside other processes on the device must not hold what it does not use)."""
        from .gpu_memory import bounded_gpu_cache

        with bounded_gpu_cache():
            return self._train(examples, log_every, evaluate, metric)

    def _train(self, examples, log_every, evaluate, metric) -> dict:
        import mlx.core as mx

        from .schedule import make_optimizer, make_schedule

        s = self.settings
        batches = training_batches(examples, s)
        total = len(batches)
        if total == 0:
            raise ValueError(f"{len(examples)} examples make no full batch of {s.batch_size} distinct queries")
        optimizer = make_optimizer(
            make_schedule(s.learning_rate, total, s.warmup_steps(total), "linear"), s.weight_decay
        )
        pad, compiled = s.resolved_speed()  # the environment is read once per run
        step_fn = self._step_fn(optimizer, compiled)
        encode, collate = self.embedder.tokenizer.encode_batch, self.embedder.collate
        selection = self.selection(evaluate, metric) if evaluate is not None else None
        points = set(eval_points(total, s.eval_steps))
        mx.reset_peak_memory()
        start = time.perf_counter()
        if selection is not None:
            self.module.eval()
            selection.run(0)
        losses, tokens, step_times = [], 0, []
        encoded = pretokenize(encode, examples, batches)  # each distinct text once (inside the wall time)
        for step, batch in enumerate(batches, 1):
            t0 = time.perf_counter()
            self.module.train()
            queries, docs = ([encoded[t] for t in texts] for texts in batch_texts(examples, batch))
            loss = step_fn(*collate(queries, pad), *collate(docs, pad))
            mx.eval(self.module.parameters(), optimizer.state, loss)
            losses.append(float(loss))
            step_times.append(time.perf_counter() - t0)
            tokens += sum(len(e.ids) for e in queries + docs)
            if log_every and len(losses) % log_every == 0:
                print(f"step {len(losses)}/{total} loss {np.mean(losses[-log_every:]):.4f}", flush=True)
            if selection is not None and step in points:
                self.module.eval()
                selection.run(step)
        self.module.eval()
        if selection is not None:
            selection.restore()
            mx.eval(self.module.parameters())
        wall = time.perf_counter() - start - (selection.eval_time_s if selection else 0.0)
        return {
            "steps": total,
            "losses": losses,
            "wall_s": wall,
            "tokens": tokens,
            "tokens_per_s": tokens / wall,
            "peak_memory_mb": mx.get_peak_memory() / 2**20,
            "adapter": self.adapter_config,
            "pad_multiple": pad,
            "compiled_step": compiled,
            "step_times_s": step_times,
            "selection": selection.summary() if selection else None,
        }
