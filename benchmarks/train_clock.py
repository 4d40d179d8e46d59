"""The per-update clock of ``benchmarks/gpu_train.py`` (and ``train_llm_lora_speed.py``): stamps taken at the same
point on both stacks, the warm-up-excluded figures computed from them, and the markdown table.

Where the clock stops, on both stacks: at the end of each optimizer update, before that update's bookkeeping
(logging, dev evaluation, checkpoint writes, callbacks). torch: ``torch.optim``'s global step post-hook, called
right after ``optimizer.step()``; the HF Trainer's bookkeeping (scheduler, logging, callbacks) comes after it and
falls into the next update's interval. MLX: right after ``RerankerTrainerBase._update`` returns (the update's
results read back), before ``_after_update``; its bookkeeping likewise falls into the next interval. So the end-of-run
checkpoint the MLX trainer writes after its last update (and torch's final save after ``train()``) is outside every
window, and a window compares the same work (docs/training.md, "Clocks").
"""

from __future__ import annotations

import statistics
import time


class StepClock:
    """Host clock stamps at the start of training (``stamps[0]``) and at the end of every optimizer update
    (``stamps[k]``: update ``k``), for either stack (see the module docstring for where).

    The torch device is synchronized only at the stamps in ``sync_at`` (the start, the end of the warm-up, the last
    update), so the trainers' own overlap of host and device work is left as it is: windows between synchronized
    stamps are exact, single torch updates inside a window are host-clock figures. The MLX trainer reads each
    update's results back before it returns: every MLX stamp is synchronized. The start: the MLX trainer's
    ``train()`` call, the HF Trainer's ``on_train_begin``, the torch LLM loop's ``run()``."""

    def __init__(self, sync=None, sync_at: tuple[int, ...] = ()):
        self.stamps: list[float | None] = []
        self.sync, self.sync_at = sync, set(sync_at)
        self.info: dict = {}
        self._undo: list = []  # what unhook() restores

    def unhook(self) -> None:
        """Remove the torch hooks and patches this clock installed (a benchmark child just exits; tests call it)."""
        while self._undo:
            self._undo.pop()()

    def stamp(self) -> None:
        if self.sync is not None and len(self.stamps) in self.sync_at:
            self.sync()
        self.stamps.append(time.perf_counter())

    def hook_mlx(self, trainer) -> None:
        """Stamp now (the start) and at the end of each of ``trainer``'s optimizer updates (its ``_update``), before
        the update's bookkeeping."""
        update = trainer._update

        def stamped_update(*args, **kwargs):
            out = update(*args, **kwargs)
            self.stamp()
            return out

        trainer._update = stamped_update
        self.stamp()

    def hook_torch(self, hf_trainer: bool) -> None:
        """Stamp every ``optimizer.step()``'s end and the training's start: the HF Trainer's (``hf_trainer``; its
        optimizer's kind, the parameters' dtype and whether autocast is on are recorded too) or the LLM loop's."""
        from torch.optim.optimizer import register_optimizer_step_post_hook

        clock = self
        self._undo.append(register_optimizer_step_post_hook(lambda opt, args, kwargs: clock.stamp()).remove)
        if not hf_trainer:  # the LLM baseline's loop (harness/train/torch_llm.py): its start is run()
            from harness.train import torch_llm

            run = torch_llm._Loop.run
            self._undo.append(lambda: setattr(torch_llm._Loop, "run", run))

            def stamped_run(loop):
                clock.stamp()
                return run(loop)

            torch_llm._Loop.run = stamped_run
            return
        from transformers.trainer_callback import CallbackHandler

        begin = CallbackHandler.on_train_begin
        self._undo.append(lambda: setattr(CallbackHandler, "on_train_begin", begin))

        def on_train_begin(handler, args, state, control):
            opt = getattr(handler.optimizer, "optimizer", handler.optimizer)  # accelerate's wrapper holds it
            params = [p for g in opt.param_groups for p in g["params"]]
            import torch

            clock.info = {
                "float32_matmul_precision": torch.get_float32_matmul_precision(),
                "allow_tf32": torch.backends.cuda.matmul.allow_tf32,
                "optimizer": type(opt).__name__,
                "foreach": opt.defaults.get("foreach"),
                "fused": opt.defaults.get("fused"),  # None/None: torch's default, the foreach kernels on CUDA
                "param_dtype": str(params[0].dtype) if params else None,
                "autocast": bool(args.bf16 or args.fp16),
                "attn_implementation": getattr(getattr(handler.model, "config", None), "_attn_implementation", None),
            }
            clock.stamp()
            return begin(handler, args, state, control)

        CallbackHandler.on_train_begin = on_train_begin


def steady(stamps: list, warmup: int, step_tokens: list[int] | None) -> dict:
    """Per-update figures from ``stamps`` (:class:`StepClock`), the first ``warmup`` updates excluded: the window's
    mean seconds per update (end of update ``warmup`` to the end of the last), the median, min and max of its
    single updates, tokens/s over the window (``step_tokens``: non-padding tokens per update), the warm-up's seconds
    (start to the end of update ``warmup``; None when the start was not stamped) and the first update's."""
    n = len(stamps) - 1
    if n - warmup < 1 or warmup < 1:
        return {"warmup_steps": warmup, "timed_steps": max(0, n - warmup)}
    timed = [stamps[k] - stamps[k - 1] for k in range(warmup + 1, n + 1)]
    window = stamps[n] - stamps[warmup]
    tokens = sum(step_tokens[warmup:n]) if step_tokens and len(step_tokens) >= n else None
    return {
        "warmup_steps": warmup,
        "timed_steps": len(timed),
        "warmup_s": stamps[warmup] - stamps[0] if stamps[0] is not None else None,
        "first_update_s": stamps[1] - stamps[0] if stamps[0] is not None else None,
        "window_s": window,
        "mean_step_s": window / len(timed),
        "median_step_s": statistics.median(timed),
        "min_step_s": min(timed),
        "max_step_s": max(timed),
        "window_tokens": tokens,
        "tokens_per_s": tokens / window if tokens is not None and window > 0 else None,
    }


def with_steady(rows: list[dict], warmup: int) -> None:
    """Add each row's warm-up-excluded figures (:func:`steady`). Tokens per update are the MLX trainer's count of
    the job (both stacks are fed the same micro-batches; the torch trainer reports only its total, which is
    checked equal)."""
    for r in rows:
        if "error" in r:
            continue
        tokens = r.get("step_tokens") or next(
            (m.get("step_tokens") for m in rows if m.get("job") == r["job"] and m.get("step_tokens")), None
        )
        if len(r["stamps"]) != r["steps"] + 1:
            r["steady"] = {"error": f"{len(r['stamps'])} clock stamps for {r['steps']} updates (expected one more)"}
            continue
        r["steady"] = steady(r["stamps"], warmup, tokens)


def table(rows: list[dict], warmup: int) -> str:
    """Markdown: per trainer, the steady figures (first ``warmup`` updates excluded) and the whole run's."""
    out = [
        f"steady = updates after the first {warmup} (window: end of update {warmup} to the end of the last); "
        "train s = the trainer's own clock over all updates (warm-up included); PTX cache = MLX kernel modules on "
        "disk before the run (0: cold)",
        "| job | trainer | device | steps | steady s/update (mean) | median [min-max] ms | steady tokens/s | "
        "first update s | warm-up s | train s | process wall s | peak MB | PTX cache |",
        "|---|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "error" in r:
            out.append(f"| {r['job']} | {r['backend']} | error | | | | | | | | | | |")
            continue
        st = r.get("steady") or {}
        if st.get("timed_steps"):
            spread = f"{st['median_step_s'] * 1e3:.1f} [{st['min_step_s'] * 1e3:.1f}-{st['max_step_s'] * 1e3:.1f}]"
            mean, tps = f"{st['mean_step_s']:.4f}", f"{st['tokens_per_s']:,.0f}" if st["tokens_per_s"] else "n/a"
            warm = f"{st['warmup_s']:.2f}" if st.get("warmup_s") is not None else "n/a"
            first = f"{st['first_update_s']:.2f}" if st.get("first_update_s") is not None else "n/a"
        else:
            spread = mean = tps = warm = first = "n/a"
        ptx = (r.get("ptx_cache") or {}).get("modules_before", "")
        out.append(
            f"| {r['job']} | {r['backend']} | {r['device']} | {r['steps']} | {mean} | {spread} | {tps} | {first} | "
            f"{warm} | {r['train_time_s']:.2f} | {r['process_wall_s']:.1f} | {r['peak_memory_mb']:,.0f} | {ptx} |"
        )
    return "\n".join(out)
