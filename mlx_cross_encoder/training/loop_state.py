"""What one ``train()`` call of the MLX trainers tracks: the resumable state, timing, the logging window and the
JSONL log (``<output_dir>/train_log.jsonl``)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .checkpoint import latest_checkpoint
from .data import Batcher

logger = logging.getLogger("mlx_cross_encoder.training")

LOG_FILE = "train_log.jsonl"


@dataclass
class RunState:
    """One ``train()`` call's bookkeeping: data, totals, the resumable ``state`` (what a checkpoint's
    ``state.json`` holds), timing and the logging window."""

    batcher: Batcher
    dev: Any
    total_steps: int
    out_dir: Path
    log_path: Path
    wall_start: float
    resumed_from: Path | None = None
    bar: Any = None
    #: seconds and non-padding tokens of each update of this call, in order
    step_times: list[float] = field(default_factory=list)
    step_tokens: list[int] = field(default_factory=list)
    window: dict[str, float] = field(default_factory=lambda: {"loss": 0.0, "n": 0, "tokens": 0, "time": 0.0})
    state: dict[str, Any] = field(
        default_factory=lambda: {
            "step": 0,
            "epoch": 0,
            "micro_in_epoch": 0,
            "best_metric": None,
            "best_step": None,
            "best_metrics": None,
            "evals_without_improvement": 0,
            "last_eval": None,
            "stopped_early": False,
        }
    )

    def stopped(self) -> bool:
        return self.state["step"] >= self.total_steps or self.state["stopped_early"]

    @property
    def train_time(self) -> float:
        """Seconds of this call's updates."""
        return sum(self.step_times)

    @property
    def tokens(self) -> int:
        """Non-padding tokens of this call's updates."""
        return sum(self.step_tokens)

    def bookkeeping_due(self, cfg, step: int, last_micro: bool) -> tuple[bool, bool]:
        """(dev evaluation, checkpoint write) due after update ``step`` with the settings ``cfg``: an evaluation
        every ``eval_steps`` updates (at each epoch's end without it) and after the last; a checkpoint every
        ``save_steps``, after each evaluation (early stopping follows one) and after the last update."""
        done = step >= self.total_steps
        evaluate = self.dev is not None and bool(
            (cfg.eval_steps and step % cfg.eval_steps == 0) or (not cfg.eval_steps and last_micro) or done
        )
        return evaluate, bool(cfg.save_steps and step % cfg.save_steps == 0) or evaluate or done

    def add_step(self, seconds: float, loss_sum: float, n_examples: int, tokens: int) -> None:
        """One update: its seconds, summed loss, examples and non-padding tokens."""
        self.window["tokens"] += tokens
        self.step_times.append(seconds)
        self.step_tokens.append(tokens)
        self.window["time"] += seconds
        self.window["loss"] += loss_sum
        self.window["n"] += n_examples

    def take_window(self) -> dict[str, Any]:
        """Throughput and mean loss since the last logged record; the window restarts."""
        w = self.window
        self.window = {"loss": 0.0, "n": 0, "tokens": 0, "time": 0.0}
        return {"tokens_per_s": w["tokens"] / w["time"] if w["time"] else None, "window_loss": w["loss"] / w["n"]}


def truncate_log(path: Path, step: int) -> list[dict]:
    """Keep the log lines of steps up to ``step`` (a resumed run rewrites what came after its checkpoint)."""
    kept = []
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                if rec.get("step", 0) <= step:
                    kept.append(rec)
    path.write_text("".join(json.dumps(r) + "\n" for r in kept))
    return kept


def with_next(items):
    """``(item, the item after it)`` pairs (None after the last): the loop prepares the next micro-batch ahead."""
    it = iter(items)
    current = next(it, _END)
    while current is not _END:
        following = next(it, _END)
        yield current, (None if following is _END else following)
        current = following


_END = object()


def resume_path(setting: bool | str, output_dir: Path) -> Path | None:
    """The checkpoint ``resume_from_checkpoint`` names: True = the latest in ``output_dir`` (None, with a warning,
    when there is none), a path, or None (start fresh)."""
    if setting is True:
        found = latest_checkpoint(output_dir)
        if found is None:
            logger.warning("resume_from_checkpoint=True but %s has no checkpoint; starting fresh", output_dir)
        return found
    return Path(setting) if setting else None
