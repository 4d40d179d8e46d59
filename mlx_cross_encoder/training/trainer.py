"""The training loop shared by the MLX reranker trainers.

A subclass supplies the model-specific parts: ``_prepare()`` (build ``self.model`` with its trainable
parameters and ``self.adapter_config``), ``_encode(pairs) -> (inputs, n_tokens)`` and ``_scores(inputs)``
(raw scores, one per pair, computed with ``self.model``). The loop does the rest: deterministic batches,
loss, gradient accumulation, global-norm clipping, AdamW with warmup + decay, periodic evaluation with a ranking
metric, best-checkpoint tracking, early stopping, atomic checkpoints, exact resume, a progress bar and a JSONL
log.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
from tqdm.auto import tqdm

from .checkpoint import load_checkpoint, recover_dir, remove_partial_checkpoints, save_checkpoint
from .compiled_step import CompiledStep, compile_enabled, mean_clip_update, weigh_add
from .data import Batch, Batcher, Group, eval_rankings, load_groups
from .evaluation import BEST_DIR, DevEvaluation, MetricFn
from .gpu_memory import bounded_gpu_cache
from .loop_state import LOG_FILE, RunState, resume_path, truncate_log, with_next
from .lora import save_adapter
from .losses import compute_loss
from .schedule import make_optimizer, make_schedule
from .settings import TrainingSettings

logger = logging.getLogger("mlx_cross_encoder.training")


def _micro_seed(seed: int, epoch: int, micro: int) -> int:
    """Dropout seed of one micro-batch: a pure function of the loop position, so a resumed run draws the same."""
    return (int(seed) * 1_000_003 + int(epoch) * 100_003 + int(micro)) % (2**32)


class RerankerTrainerBase(DevEvaluation):
    """Shared loop; see the module docstring for what subclasses implement."""

    config: TrainingSettings
    model: nn.Module
    adapter_config: dict[str, Any]

    def __init__(self, config: TrainingSettings):
        self.config = config
        self._prepared = False
        self.optimizer: optim.Optimizer | None = None
        self.history: list[dict[str, Any]] = []
        self._compiled: CompiledStep | None = None  # set by train() (compiled_step.compile_enabled)
        self._prefetcher: ThreadPoolExecutor | None = None  # the compiled step's tokenizing thread, in train()

    # -- to implement ----------------------------------------------------------------------------------
    def _prepare(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _encode(self, pairs: list[tuple[str, str]]) -> tuple[tuple, int]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _tokenize(self, pairs: list[tuple[str, str]]):
        """Optional: the host-only part of :meth:`_encode` (no MLX arrays), which the compiled step runs for the
        next micro-batch on a worker thread while the device computes; then ``_encode(pairs, tokenized)`` is
        called with its result. None (the default): no such part, ``_encode(pairs)`` does everything."""
        return None

    def _scores(self, inputs: tuple) -> mx.array:  # pragma: no cover - abstract
        raise NotImplementedError

    def _adapter_extra(self) -> dict[str, Any]:
        return {}

    # -- set-up --------------------------------------------------------------------------------------------
    def prepare_model(self):
        """Load the model and add LoRA layers / unfreeze parameters (idempotent). Returns ``self``."""
        if not self._prepared:
            mx.random.seed(self.config.seed)  # LoRA initialisation
            self._prepare()
            self._prepared = True
        return self

    @property
    def output_dir(self) -> Path:
        return Path(self.config.output_dir)

    def trainable_parameter_count(self) -> int:
        from mlx.utils import tree_flatten

        return sum(v.size for _, v in tree_flatten(self.model.trainable_parameters()))

    # -- outputs ---------------------------------------------------------------------------------------------
    def save_adapter(self, path=None) -> Path:
        """The trained tensors + ``adapter_config.json`` (mlx-lm layout); default ``<output_dir>/adapter``."""
        self.prepare_model()
        path = Path(path) if path is not None else self.output_dir / "adapter"
        return save_adapter(self.model, path, self.adapter_config, self._adapter_extra())

    # -- training -----------------------------------------------------------------------------------------
    def _loss(self, inputs, labels, teacher, group_size):
        cfg = self.config
        scores = self._scores(inputs)
        return compute_loss(
            cfg.loss, scores, labels, teacher, group_size, cfg.pos_weight, cfg.temperature, cfg.teacher_temperature
        )

    def _cpu_streams(self) -> list:
        """The MLX CPU streams a micro-batch is split over (``_blas.cpu_stream_count``: one per core, at most 8, or
        ``MLX_CROSS_ENCODER_CPU_STREAMS``); ``[None]`` (the default stream) on a GPU or with one stream.

        On the CPU, MLX runs elementwise kernels on one thread per stream and only the BLAS is multi-threaded, so
        one stream leaves cores idle for much of a training step; inference splits its batches the same way."""
        if getattr(self, "_streams", None) is None:
            from .. import _blas

            n = _blas.cpu_stream_count() if mx.default_device() == mx.cpu else 1
            self._streams = [mx.new_stream(mx.cpu) for _ in range(n)] if n > 1 else [None]
        return self._streams

    def _accumulate(self, value_and_grad, batch: Batch, acc_grads, tokenized=None):
        """Add one micro-batch's example-weighted gradient to ``acc_grads``: :meth:`_accumulate_plain`, or the
        compiled step's ``accumulate`` (:mod:`.compiled_step`; lazy: evaluated with the update; ``tokenized``:
        the batch's :meth:`_tokenize`, prepared ahead)."""
        compiled = self._compiled
        if compiled is None:
            return self._accumulate_plain(value_and_grad, batch, acc_grads)
        inputs, labels, teacher, n_tokens = self._batch_arrays(batch, tokenized)
        loss_sum, acc_grads = compiled.accumulate(
            inputs, labels, teacher, batch.group_size, batch.n_examples, acc_grads
        )
        mx.async_eval(loss_sum, acc_grads)  # the device computes while the host prepares what comes next
        return acc_grads, loss_sum, n_tokens

    def _accumulate_plain(self, value_and_grad, batch: Batch, acc_grads):
        """Add one micro-batch's example-weighted gradient (``n_examples * mean gradient``) to ``acc_grads``;
        returns ``(acc_grads, loss * n_examples, tokens)``.

        The micro-batch's examples are split over the CPU streams (:meth:`_cpu_streams`) and evaluated at once,
        each part weighted by its number of examples: the sum is the whole micro-batch's, as with gradient
        accumulation (the same up to float rounding; dropout masks are drawn per part)."""
        from .. import _blas

        streams = self._cpu_streams()
        parts = batch.split(len(streams)) if len(streams) > 1 else [batch]
        loss_sum, tokens = None, 0
        for part, stream in zip(parts, streams):
            with mx.stream(stream) if stream is not None else nullcontext():
                inputs, labels, teacher, n_tokens = self._batch_arrays(part)
                loss, grads = value_and_grad(inputs, labels, teacher, part.group_size)
                n = part.n_examples
                acc_grads = weigh_add(acc_grads, grads, n)
                loss_sum = loss * n if loss_sum is None else loss_sum + loss * n
                tokens += n_tokens
        with _blas.single_threaded_while(len(streams) > 1):
            mx.eval(acc_grads, loss_sum)
        return acc_grads, loss_sum.item(), tokens

    def _batch_arrays(self, batch: Batch, tokenized=None):
        inputs, n_tokens = self._encode(batch.pairs) if tokenized is None else self._encode(batch.pairs, tokenized)
        labels = mx.array(batch.labels)
        teacher = mx.array(batch.teacher) if batch.teacher is not None else None
        return inputs, labels, teacher, n_tokens

    def train(
        self,
        train_data,
        eval_data=None,
        *,
        metric_fn: MetricFn | None = None,
        callbacks: Sequence[Callable[[RerankerTrainerBase, dict], Any]] = (),
    ) -> dict[str, Any]:
        """Train on ``train_data`` (records or a .jsonl path), evaluating on ``eval_data`` if given.

        ``metric_fn(run, qrels) -> {name: value}`` scores dev rankings (default: built-in nDCG@10/MRR@10);
        ``config.metric_for_best`` picks the value that selects the best checkpoint and drives early stopping.
        ``callbacks`` are called as ``cb(trainer, record)`` after every optimizer step (once its checkpoint,
        if any, is written). Returns a summary: steps, wall/train time, tokens/s, peak memory, best and final
        dev metrics, paths.
        """
        self.prepare_model()
        run = self._start(train_data, eval_data)
        value_and_grad = nn.value_and_grad(self.model, self._loss)
        self.model.train()
        self._compiled = (
            CompiledStep(self.model, self.optimizer, value_and_grad, self.config.max_grad_norm)
            if compile_enabled()
            else None
        )
        # the fast step tokenizes the next micro-batch on a worker thread while the device computes, when the
        # subclass has a host-only part (_tokenize overridden)
        prefetch = self._compiled is not None and type(self)._tokenize is not RerankerTrainerBase._tokenize
        self._prefetcher = ThreadPoolExecutor(1, thread_name_prefix="tokenize") if prefetch else None
        mx.reset_peak_memory()
        try:
            with bounded_gpu_cache():  # a GPU process holds about what it uses (gpu_memory: session 4's OOM)
                while not run.stopped():
                    if self._epoch(run, value_and_grad, metric_fn, callbacks):
                        break
        finally:
            run.bar.close()
            if self._prefetcher is not None:
                self._prefetcher.shutdown(wait=True, cancel_futures=True)
                self._prefetcher = None
        return self._finish(run)

    def _start(self, train_data, eval_data) -> RunState:
        """The run's data, schedule, optimizer and state: fresh, or restored from a checkpoint."""
        cfg = self.config
        wall_start = time.perf_counter()
        groups = (
            train_data
            if isinstance(train_data, list) and train_data and isinstance(train_data[0], Group)
            else load_groups(train_data)
        )
        batcher = Batcher(groups, cfg.loss, cfg.batch_size, cfg.group_size, cfg.seed)
        updates_per_epoch = math.ceil(len(batcher) / cfg.gradient_accumulation_steps)
        total_steps = cfg.max_steps if cfg.max_steps else updates_per_epoch * cfg.num_epochs
        warmup = cfg.warmup_updates(total_steps)
        schedule = make_schedule(cfg.learning_rate, total_steps, warmup, cfg.lr_scheduler)
        self.optimizer = make_optimizer(schedule, cfg.weight_decay, cfg.adam_betas, cfg.adam_eps)
        self.optimizer.init(self.model.trainable_parameters())
        out_dir = self.output_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        recover_dir(out_dir / BEST_DIR)  # a crash while best/ was replaced leaves the old copy aside
        remove_partial_checkpoints(out_dir)
        run = RunState(
            batcher=batcher,
            dev=eval_rankings(eval_data) if eval_data is not None else None,
            total_steps=total_steps,
            out_dir=out_dir,
            log_path=out_dir / LOG_FILE,
            wall_start=wall_start,
        )
        run.state["total_steps"] = total_steps
        run.resumed_from = resume_path(cfg.resume_from_checkpoint, self.output_dir)
        if run.resumed_from is not None:
            saved = load_checkpoint(run.resumed_from, self.model, self.optimizer)
            if saved.get("total_steps") != total_steps:
                raise ValueError(
                    f"checkpoint {run.resumed_from} was made for {saved.get('total_steps')} total steps, this run "
                    f"has {total_steps}: resume with the same data and settings"
                )
            run.state.update(saved)
            self.history = truncate_log(run.log_path, run.state["step"])
            logger.info("resumed from %s at step %d", run.resumed_from, run.state["step"])
        else:
            self.history = []
            run.log_path.write_text("")
        run.bar = tqdm(total=total_steps, initial=run.state["step"], desc="Training", disable=not cfg.show_progress_bar)
        return run

    def _epoch(self, run: RunState, value_and_grad, metric_fn, callbacks) -> bool:
        """The rest of the current epoch (micro-batches already consumed are skipped); True to stop."""
        cfg, state = self.config, run.state
        epoch, skip = state["epoch"], state["micro_in_epoch"]
        micro_per_epoch = len(run.batcher)
        acc_grads, acc_n, acc_losses, acc_tokens = None, 0, [], 0
        pending = None  # (micro-batch index, future of its _tokenize) when prefetching
        ahead = None  # (micro-batch index, its _accumulate), dispatched while the previous update ran

        def tokenized(index: int):  # micro-batch index's _tokenize result if the worker thread made it, else None
            nonlocal pending
            done, pending = (pending[1].result() if pending is not None and pending[0] == index else None), None
            return done

        tic = time.perf_counter()
        for mi, (batch, following) in enumerate(with_next(run.batcher.batches(epoch))):
            if mi < skip:
                continue  # consumed before the checkpoint we resumed from
            tok = tokenized(mi)
            if self._prefetcher is not None and following is not None:
                pending = (mi + 1, self._prefetcher.submit(self._tokenize, following.pairs))
            if ahead is not None and ahead[0] == mi:
                (acc_grads, loss_sum, n_tokens), ahead = ahead[1], None
            else:
                mx.random.seed(_micro_seed(cfg.seed, epoch, mi))
                acc_grads, loss_sum, n_tokens = self._accumulate(value_and_grad, batch, acc_grads, tok)
            acc_losses.append(loss_sum)
            acc_n += batch.n_examples
            acc_tokens += n_tokens
            last_micro = mi == micro_per_epoch - 1
            if (mi + 1) % cfg.gradient_accumulation_steps != 0 and not last_micro:
                continue

            def dispatch_next(mi=mi, following=following, last_micro=last_micro):
                """The fast step: dispatch the next micro-batch's forward and backward pass (it reads the
                parameters this update computes; the bookkeeping reads none it changes) before waiting for the
                update, so building its graph overlaps the device. Not before an evaluation or a checkpoint write
                (nor after the last update): that device work would hide in them, outside the update clock."""
                nonlocal ahead
                if following is None or any(run.bookkeeping_due(cfg, state["step"] + 1, last_micro)):
                    return
                next_tok = tokenized(mi + 1)
                mx.random.seed(_micro_seed(cfg.seed, epoch, mi + 1))
                ahead = (mi + 1, self._accumulate(value_and_grad, following, None, next_tok))

            grad_norm, lr = self._update(acc_grads, acc_n, dispatch_next if self._compiled is not None else None)
            acc_loss = sum(float(x) for x in acc_losses)  # the compiled step's are arrays, evaluated by now
            run.add_step(time.perf_counter() - tic, acc_loss, acc_n, acc_tokens)
            state["step"] += 1
            state["epoch"], state["micro_in_epoch"] = (epoch + 1, 0) if last_micro else (epoch, mi + 1)
            record: dict[str, Any] = {
                "type": "train",
                "step": state["step"],
                "epoch": round(epoch + (mi + 1) / micro_per_epoch, 4),
                "loss": acc_loss / acc_n,
                "lr": lr,
                "grad_norm": grad_norm,
            }
            acc_grads, acc_n, acc_losses, acc_tokens = None, 0, [], 0
            if self._after_update(run, record, last_micro, metric_fn, callbacks):
                return True
            tic = time.perf_counter()
        return False

    def _update(self, acc_grads, acc_n: int, meanwhile: Callable[[], None] | None = None) -> tuple[float | None, float]:
        """One optimizer update with the mean gradient: clipped, then AdamW. Returns (the norm before clipping,
        the learning rate the optimizer used). The fast step dispatches the update, calls ``meanwhile`` and then
        waits for the results."""
        cfg = self.config
        compiled = self._compiled
        if compiled is not None:
            norm, lr = compiled.apply(acc_grads, acc_n)
            mx.async_eval(norm, lr, self.model.parameters(), self.optimizer.state)
            if meanwhile is not None:
                meanwhile()
            return (float(norm.item()) if compiled.clips else None), lr.item()
        grad_norm = mean_clip_update(self.model, self.optimizer, acc_grads, acc_n, cfg.max_grad_norm)
        mx.eval(self.model.parameters(), self.optimizer.state)
        lr = self.optimizer.learning_rate.item()  # what this update used (the schedule at its step)
        return (float(grad_norm.item()) if grad_norm is not None else None), lr

    def _after_update(self, run: RunState, record: dict, last_micro: bool, metric_fn, callbacks) -> bool:
        """Log, evaluate, checkpoint and call back after an update; True to stop (done or early stopping). All of it
        is outside the update clock (``RunState.step_times``, which ``train_time_s`` and ``tokens_per_s`` sum): an
        update's clock runs from the end of the previous update's bookkeeping to its results read back."""
        cfg, state = self.config, run.state
        step = state["step"]
        if step % cfg.logging_steps == 0 or step == run.total_steps or last_micro:
            record.update(run.take_window())
            self._log(run.log_path, record)
            run.bar.set_postfix(
                loss=f"{record['window_loss']:.4f}",
                lr=f"{record['lr']:.2e}",
                tok_s=f"{record['tokens_per_s'] or 0:.0f}",
            )
        run.bar.update(1)
        evaluate, save = run.bookkeeping_due(cfg, step, last_micro)
        stop = self._evaluate_step(run.dev, metric_fn, state, run.log_path) if evaluate else False
        if save:
            save_checkpoint(run.out_dir, self.model, self.optimizer, state, keep=cfg.save_total_limit)
        for cb in callbacks:
            cb(self, record)
        return stop or step >= run.total_steps

    def _finish(self, run: RunState) -> dict[str, Any]:
        """Load the best weights back (``load_best_model_at_end``) and summarize the run."""
        cfg, state = self.config, run.state
        final_metrics = state["last_eval"]
        if run.dev is not None and cfg.load_best_model_at_end and state["best_step"] is not None:
            if state["best_step"] != state["step"]:
                self._load_trainable(run.out_dir / BEST_DIR)
            final_metrics = state["best_metrics"]
        self.model.eval()
        return {
            "steps": state["step"],
            "total_steps": run.total_steps,
            "epochs": state["epoch"] + state["micro_in_epoch"] / max(1, len(run.batcher)),
            "stopped_early": state["stopped_early"],
            "wall_time_s": time.perf_counter() - run.wall_start,
            "train_time_s": run.train_time,
            "step_times_s": list(run.step_times),  # each update of this call (what train_time_s sums)
            "step_tokens": list(run.step_tokens),  # its non-padding tokens (what train_tokens sums)
            # which fast step ran (compiled_step.py); None: the plain step
            "compiled_step": None if self._compiled is None else self._compiled.describe(),
            "train_tokens": run.tokens,
            "tokens_per_s": run.tokens / run.train_time if run.train_time else None,
            "peak_memory_bytes": int(mx.get_peak_memory()),
            "best_metric": state["best_metric"],
            "best_step": state["best_step"],
            "final_metrics": final_metrics,
            "metric": cfg.metric_for_best,
            "log_file": str(run.log_path),
            "best_dir": str(run.out_dir / BEST_DIR) if state["best_step"] is not None else None,
            "resumed_from": str(run.resumed_from) if run.resumed_from is not None else None,
        }

    # -- loop helpers ------------------------------------------------------------------------------------
    def _log(self, path: Path, record: dict) -> None:
        self.history.append(record)
        with path.open("a") as fh:
            fh.write(json.dumps(record) + "\n")
