"""Where a MiniLM-L6 training step spends its time, MLX vs PyTorch, in ONE process (issue 12 item 6).

    python benchmarks/train_step_profile.py [--steps 8] [--batch-size 32] [--max-length 256] [--lora]
        [--mlx-modes before,plain,trainer] [--torch-device cuda|cpu] [--json OUT]

The real all-MiniLM-L6-v2 encoder + seeded head (``local:minilm-l6-seeded-head``), float32, full fine-tuning
(``--lora``: LoRA r8 alpha 16, head in full), BCE on DL19 judged BM25 pairs (``benchmarks/gpu_train.py``'s
``judged_pairs``; DL19 is a dev set here). Both stacks see the same micro-batches (the MLX trainer's ``Batcher``
order) and the same kind of update (AdamW, clip 1.0, no dropout; the learning-rate schedules differ: timing
only). Steps are interleaved: for each batch every MLX mode and torch run one step (in alternating order), so load
swings of the shared box hit all of them alike; medians and spread are reported. torch runs in a child process
(stepped over a pipe) with its default threads: in a process that loaded MLX's sequential MKL first, torch falls to
one thread, which is not how the harness's torch trainer runs.

Phases timed per step (each phase ends with a host sync so that its work is inside its timer):

- ``tokenize``: the fast tokenizer on the pairs (MLX: ``tokenizers.Tokenizer.encode_batch``; torch: the same
  library through ``AutoTokenizer``), ``collate``: padding to arrays/tensors;
- ``fwd_bwd``: loss and gradients (MLX: ``nn.value_and_grad`` + ``mx.eval``; torch: forward + ``backward``);
- ``update``: clipping + AdamW (MLX: ``optimizer.update`` + ``mx.eval``; torch: ``clip_grad_norm_`` + ``step``);
- ``sync``: reading the loss / grad norm / lr back to Python (``.item()``).

MLX modes: ``plain`` (one stream, the step as ``RerankerTrainerBase`` does it, phase by phase), ``before`` (the
same with the GELU as it was before the training-speed fix: MLX differentiating through the compiled rational erf
instead of ``layers._gelu_rational``'s closed-form derivative), ``streams`` (the micro-batch split over one CPU
stream per core, as the trainer does on a CPU), ``trainer`` (the trainer's own ``_accumulate`` + ``_update``:
tokenization and collation inside ``fwd_bwd``), ``trainer-before`` (``trainer`` with the GELU as before the fix),
``eager`` / ``update`` / ``compiled`` (``trainer`` with the fast step of ``training/compiled_step.py``: the flat
AdamW with nothing, the update, or the whole step compiled; ``eager`` is the GPU default; their ``fwd_bwd`` only
builds and dispatches the work, the wait for it falls in ``update``).
MLX runs on its default device (a GPU when MLX has one); torch on ``--torch-device`` (default: cuda when torch sees
one), each torch phase ended by ``torch.cuda.synchronize()`` there.
Ratios to torch are reported as the median of the per-step ratios (each step's MLX and torch times were taken
back to back) and as the ratio of the medians.
``MLX_CROSS_ENCODER_CPU_STREAMS`` applies as in the trainer.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

if "--torch-worker" not in sys.argv:  # the torch side runs in its own process, without MLX or its BLAS
    import mlx_cross_encoder  # noqa: F401  # isort: skip  (BLAS hook before mlx.core)
    import mlx.core as mx
    import mlx.nn as nn
    from mlx.utils import tree_map


_now = time.perf_counter


def mlx_trainer(path: str, a, mode: str):
    from mlx_cross_encoder import MLXCrossEncoderConfig, MLXCrossEncoderTrainer

    cfg = MLXCrossEncoderConfig(
        pretrained_path=path,
        dtype="float32",
        show_progress_bar=False,
        save_steps=10**9,
        fine_tune_type="lora" if a.lora else "full",
        lora_rank=8,
        lora_alpha=16,
        batch_size=a.batch_size,
        max_length=a.max_length,
        learning_rate=1e-4 if a.lora else 2e-5,
        num_epochs=1,
        warmup_ratio=0.0,
        seed=0,
        max_grad_norm=1.0,
        output_dir=tempfile.mkdtemp(prefix=f"profile-{mode}-"),
    )
    t = MLXCrossEncoderTrainer(config=cfg)
    t.prepare_model()
    return t


#: the fast-step modes: flat AdamW, with (compile accumulate, compile apply)
FAST_MODES = {"eager": (False, False), "update": (False, True), "compiled": (True, True)}


class MLXRunner:
    """One MLX trainer stepping through the shared batches in one of the modes."""

    def __init__(self, path, a, mode, total_steps):
        from mlx_cross_encoder.training.schedule import make_optimizer, make_schedule

        self.mode = mode
        self.t = mlx_trainer(path, a, mode)
        cfg = self.t.config
        sched = make_schedule(cfg.learning_rate, total_steps, 0, cfg.lr_scheduler)
        self.t.optimizer = make_optimizer(sched, cfg.weight_decay, cfg.adam_betas, cfg.adam_eps)
        self.t.optimizer.init(self.t.model.trainable_parameters())
        self.t.model.train()
        self.vg = nn.value_and_grad(self.t.model, self.t._loss)
        if mode == "streams" and not (len(self.t._cpu_streams()) > 1):
            raise SystemExit("streams mode needs more than one CPU stream")
        if mode in FAST_MODES:  # the trainer's fast step (training/compiled_step.py), as train() sets it up
            from mlx_cross_encoder.training.compiled_step import CompiledStep

            self.t._compiled = CompiledStep(
                self.t.model, self.t.optimizer, self.vg, cfg.max_grad_norm, True, FAST_MODES[mode]
            )
        if mode in ("before", "trainer-before"):
            from mlx_cross_encoder.models import layers

            for layer in self.t.model.bert.encoder.layer:
                layer.intermediate.act = layers._gelu_rational_value  # autodiff through the compiled kernel
        self.losses: list[float] = []

    def step(self, batch) -> dict[str, float]:
        from mlx_cross_encoder import _blas

        t = self.t
        times: dict[str, float] = {}
        if self.mode in ("trainer", "trainer-before", *FAST_MODES):
            t0 = _now()
            acc, loss_sum, _ = t._accumulate(self.vg, batch, None)
            t1 = _now()
            t._update(acc, batch.n_examples)
            t2 = _now()
            self.losses.append(float(loss_sum) / batch.n_examples)
            return {"fwd_bwd": t1 - t0, "update": t2 - t1, "total": t2 - t0}
        t0 = _now()
        enc = t.encoder.tokenizer.encode_batch(batch.pairs)
        t1 = _now()
        streams = t._cpu_streams() if self.mode == "streams" else [None]
        parts = batch.split(len(streams)) if len(streams) > 1 else [batch]
        arrays = []
        for part in parts:
            e = enc[: len(part.pairs)] if len(parts) == 1 else t.encoder.tokenizer.encode_batch(part.pairs)
            inputs = t.encoder._collate(e)
            arrays.append((inputs, mx.array(part.labels)))
        mx.eval([x for inp, lab in arrays for x in (*[i for i in inp if i is not None], lab)])
        t2 = _now()
        acc, loss_sum = None, None
        for part, stream, (inputs, labels) in zip(parts, streams, arrays):
            with mx.stream(stream) if stream is not None else nullcontext():
                loss, grads = self.vg(inputs, labels, None, part.group_size)
                n = part.n_examples
                w = tree_map(lambda g, n=n: g * n, grads)
                acc = w if acc is None else tree_map(lambda x, y: x + y, acc, w)
                loss_sum = loss * n if loss_sum is None else loss_sum + loss * n
        with _blas.single_threaded_while(len(streams) > 1):
            mx.eval(acc, loss_sum)
        t3 = _now()
        loss_v = loss_sum.item()
        t4 = _now()
        grads = tree_map(lambda g: g / batch.n_examples, acc)
        from mlx.optimizers import clip_grad_norm

        grads, norm = clip_grad_norm(grads, t.config.max_grad_norm)
        t.optimizer.update(t.model, grads)
        mx.eval(t.model.parameters(), t.optimizer.state)
        t5 = _now()
        norm.item(), t.optimizer.learning_rate.item()
        t6 = _now()
        self.losses.append(loss_v / batch.n_examples)
        times.update(tokenize=t1 - t0, collate=t2 - t1, fwd_bwd=t3 - t2, update=t5 - t4, sync=(t4 - t3) + (t6 - t5))
        times["total"] = t6 - t0
        return times


class TorchRunner:
    def __init__(self, path, a, total_steps):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.torch = torch
        self.tok = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=1, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
        )
        if a.lora:
            from peft import LoraConfig, get_peft_model

            self.model = get_peft_model(
                self.model,
                LoraConfig(
                    r=8,
                    lora_alpha=16,
                    target_modules=["query", "key", "value", "dense"],
                    modules_to_save=["classifier"],
                    lora_dropout=0.0,
                ),
            )
        self.device = a.torch_device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device).train()
        self.sync = torch.cuda.synchronize if self.device.startswith("cuda") else (lambda: None)
        self.max_length = a.max_length
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(params, lr=1e-4 if a.lora else 2e-5, weight_decay=0.01)
        self.params = params
        self.losses: list[float] = []

    def step(self, batch) -> dict[str, float]:
        torch = self.torch
        t0 = _now()
        q = [p[0] for p in batch.pairs]
        d = [p[1] for p in batch.pairs]
        enc = self.tok(q, d, truncation="longest_first", max_length=self.max_length, padding=True, return_tensors="pt")
        enc = enc.to(self.device)
        labels = torch.tensor(batch.labels, dtype=torch.float32, device=self.device)
        self.sync()
        t1 = _now()
        logits = self.model(**enc).logits.view(-1)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
        self.sync()
        t2 = _now()
        loss.backward()
        self.sync()
        t3 = _now()
        norm = torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.sync()
        t4 = _now()
        self.losses.append(loss.item())
        float(norm)
        t5 = _now()
        return {
            "tokenize+collate": t1 - t0,
            "forward": t2 - t1,
            "backward": t3 - t2,
            "fwd_bwd": t3 - t1,
            "update": t4 - t3,
            "sync": t5 - t4,
            "total": t5 - t0,
        }


def build_batches(a):
    from gpu_train import judged_pairs

    from mlx_cross_encoder.training.data import Batcher, load_groups

    n_steps = a.warmup + a.steps
    groups = load_groups(judged_pairs(a.data, n_steps * a.batch_size))
    return list(Batcher(groups, "bce", a.batch_size, None, 0).batches(0))[:n_steps]


def torch_worker(a) -> None:
    """The torch runner in a process of its own: torch keeps its default threads (loading MKL sequential for MLX
    first, as this script's parent does, leaves torch on one thread). Reads a batch index per line, answers the
    step's timings as one JSON line."""
    from harness.localmodels import resolve_model

    assert "mlx.core" not in sys.modules
    batches = build_batches(a)
    runner = TorchRunner(str(resolve_model("local:minilm-l6-seeded-head")), a, len(batches))
    print(json.dumps({"ready": True, "threads": runner.torch.get_num_threads(), "device": runner.device}), flush=True)
    for line in sys.stdin:
        out = runner.step(batches[int(line)])
        print(json.dumps({"times": out, "loss": runner.losses[-1]}), flush=True)


class TorchProcess:
    """Parent side of :func:`torch_worker`."""

    def __init__(self, argv: list[str]):
        import subprocess

        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--torch-worker", *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        ready = self._read()
        self.threads, self.device = ready["threads"], ready["device"]
        self.losses: list[float] = []

    def _read(self) -> dict:
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("torch worker exited")
            if line.startswith("{"):
                return json.loads(line)

    def step_index(self, i: int) -> dict[str, float]:
        self.proc.stdin.write(f"{i}\n")
        self.proc.stdin.flush()
        out = self._read()
        self.losses.append(out["loss"])
        return out["times"]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def summary(rows: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    out = {}
    for key in rows[0]:
        vals = sorted(r[key] for r in rows)
        out[key] = {"median": statistics.median(vals), "min": vals[0], "max": vals[-1]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=8, help="timed steps per runner (after --warmup)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--lora", action="store_true")
    ap.add_argument("--mlx-modes", default="before,plain,trainer")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--torch-device", help="torch's device (default: cuda when torch sees one, else cpu)")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/trec-dl")
    ap.add_argument("--json")
    ap.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.torch_worker:
        torch_worker(a)
        return
    from harness.localmodels import resolve_model

    path = str(resolve_model("local:minilm-l6-seeded-head"))
    batches = build_batches(a)
    n_steps = len(batches)
    runners = {m: MLXRunner(path, a, m, n_steps) for m in a.mlx_modes.split(",") if m}
    torch_threads = None
    if not a.no_torch:
        keys = ("steps", "warmup", "batch_size", "max_length", "data", "torch_device")
        argv = [f"--{k.replace('_', '-')}={v}" for k, v in vars(a).items() if k in keys and v is not None]
        runners["torch"] = TorchProcess(argv + (["--lora"] if a.lora else []))
        torch_threads = runners["torch"].threads
    rows: dict[str, list] = {k: [] for k in runners}
    load_before = os.getloadavg()
    for i, batch in enumerate(batches):
        order = list(runners) if i % 2 == 0 else list(reversed(runners))
        for name in order:
            r = runners[name].step_index(i) if name == "torch" else runners[name].step(batch)
            if i >= a.warmup:
                rows[name].append(r)
        print(
            f"step {i}: " + ", ".join(f"{k} {rows[k][-1]['total']:.2f}s" if rows[k] else k for k in runners), flush=True
        )
    load_after = os.getloadavg()
    if "torch" in runners:
        runners["torch"].close()
    result = {
        "settings": vars(a) | {"data": str(a.data)},
        "pairs_per_step": [len(b.pairs) for b in batches],
        "load_avg_before": load_before,  # os.getloadavg() (1, 5, 15 min) before the first step, after the last
        "load_avg_after": load_after,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch_threads,
        "torch_device": runners["torch"].device if "torch" in runners else None,
        "mlx_device": str(mx.default_device()),
        "mlx_max_ops_per_buffer": os.environ.get("MLX_MAX_OPS_PER_BUFFER"),
        "mlx_streams": len(next(iter(runners.values())).t._cpu_streams()) if a.mlx_modes else None,
        "phases": {k: summary(v) for k, v in rows.items() if v},
        "losses": {k: runners[k].losses for k in runners},
    }
    for name, ph in result["phases"].items():
        cells = ", ".join(
            f"{k} {v['median'] * 1000:.0f} [{v['min'] * 1000:.0f}-{v['max'] * 1000:.0f}] ms" for k, v in ph.items()
        )
        print(f"{name}: {cells}")
    if "torch" in result["phases"]:
        tt = result["phases"]["torch"]["total"]["median"]
        result["ratios_to_torch"] = {}
        for name in result["phases"]:
            if name != "torch":
                per_step = sorted(r["total"] / t["total"] for r, t in zip(rows[name], rows["torch"]))
                ratio = {
                    "median_of_step_ratios": statistics.median(per_step),
                    "min": per_step[0],
                    "max": per_step[-1],
                    "ratio_of_medians": result["phases"][name]["total"]["median"] / tt,
                }
                result["ratios_to_torch"][name] = ratio
                print(
                    f"{name}/torch: median step ratio {ratio['median_of_step_ratios']:.2f} "
                    f"[{ratio['min']:.2f}-{ratio['max']:.2f}], ratio of medians {ratio['ratio_of_medians']:.2f}"
                )
    print(f"load avg before {load_before}, after {load_after}")
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
