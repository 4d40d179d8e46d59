"""Where the MLX trainer's GPU memory goes, update by update (issue 13: the MLX LoRA MiniLM training ran out of GPU
memory on the H200 twice in session 4, beside other processes, while the same training peaked at 22.6 GB alone).

    python -m harness.train.memory_probe [--hog-gb G] [--updates N] [--configs lora,lora-ops20,lora-cache4,full]
    python -m harness.train.memory_probe --one CONFIG [--updates N]      (one configuration, this process)

Each configuration trains ``local:minilm-l6-seeded-head`` with the train-full recipe's shapes (listwise KL, batch 8
queries x group 32, max_length 256; LoRA r16 alpha 32 or full) on synthetic groups (77 queries x 160 candidates of
random vocabulary words, 20-230 words: batches of varied padded lengths, as the real lists give) for N updates, in
its own process, one after the other. After every update it prints MLX's active / cache / peak memory and the
process's GPU memory as nvidia-smi reports it; a dev scoring pass (19 queries x 90 candidates, batches of 128)
every ``--eval-every`` updates, as the trainer's dev evaluation does. The last line of each configuration is
``RESULT <config> OK|OOM|ERROR ...``.

``--hog-gb G`` first starts a process that holds G GiB of the GPU (torch) for the whole probe: the other processes
of session 4's calls, which MLX's allocator does not see (it sizes its cache against the whole device's memory).

Configurations: ``lora`` (as session 4's worker had it: the import hook's MLX_MAX_OPS_PER_BUFFER=2 on CUDA, MLX's
own cache limit), ``lora-ops20`` (MLX's own default graph size), ``lora-cache<G>`` (the trainer's cache bound,
``mlx_cross_encoder.training.gpu_memory``, at G GiB: the fix), ``full`` (full fine-tuning, MLX's own cache limit).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import mlx_cross_encoder  # noqa: F401  (# isort: split) the BLAS / CUDA-graph import hook before mlx.core
from mlx_cross_encoder.training.gpu_memory import CACHE_ENV_VAR

GIB = 1 << 30


def gpu_process_mb(pid: int) -> str:
    """This process's GPU memory as nvidia-smi lists it ('-' without nvidia-smi or the row)."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "-"
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0] == str(pid):
            return parts[1]
    return "-"


def synthetic_groups(tokenizer, n_queries: int, n_docs: int, seed: int):
    import numpy as np

    from mlx_cross_encoder.training.data import Group

    rng = np.random.default_rng(seed)
    words = np.array(sorted(w for w in tokenizer.get_vocab() if w.isalpha() and len(w) >= 3))
    groups = []
    for q in range(n_queries):
        query = " ".join(rng.choice(words, int(rng.integers(3, 12))))
        docs = [" ".join(rng.choice(words, int(rng.integers(20, 230)))) for _ in range(n_docs)]
        labels = [1.0 if i < 8 else 0.0 for i in range(n_docs)]
        groups.append(Group(query, docs, labels, rng.normal(size=n_docs).astype(float).tolist(), f"synthetic {q}"))
    return groups


def run_one(config: str, updates: int, eval_every: int, small: bool = False) -> int:
    import mlx.core as mx

    from harness.localmodels import resolve_model
    from mlx_cross_encoder.training import MLXCrossEncoderConfig, MLXCrossEncoderTrainer

    fine_tune = "full" if config == "full" else "lora"
    cfg = MLXCrossEncoderConfig(
        pretrained_path=resolve_model("local:minilm-l6-seeded-head"),
        output_dir=f"/tmp/memory-probe-{config}-{os.getpid()}",
        fine_tune_type=fine_tune,
        lora_rank=16,
        lora_alpha=32.0,
        loss="listwise_kl",
        group_size=4 if small else 32,
        teacher_temperature=0.05,
        batch_size=1 if small else 8,
        max_length=32 if small else 256,
        learning_rate=5e-4,
        max_steps=updates,
        logging_steps=1,
        show_progress_bar=False,
        save_total_limit=1,
    )
    trainer = MLXCrossEncoderTrainer(config=cfg)
    tok = trainer.encoder.tokenizer
    train = synthetic_groups(tok, 77, 160, 0)
    dev = [(g.query, d) for g in synthetic_groups(tok, 2 if small else 19, 90, 1) for d in g.documents]
    pid, t0 = os.getpid(), time.perf_counter()
    print(
        f"[{config}] device {mx.default_device()} MLX_MAX_OPS_PER_BUFFER={os.environ.get('MLX_MAX_OPS_PER_BUFFER')} "
        f"{CACHE_ENV_VAR}={os.environ.get(CACHE_ENV_VAR)}",
        flush=True,
    )

    def report(tr, record):
        step = record["step"]
        if eval_every and step % eval_every == 0:
            tr.predict_scores(dev, batch_size=128)
        print(
            f"[{config}] update {step} active {mx.get_active_memory() / GIB:.2f} GiB cache "
            f"{mx.get_cache_memory() / GIB:.2f} GiB peak {mx.get_peak_memory() / GIB:.2f} GiB "
            f"nvidia-smi {gpu_process_mb(pid)} MiB t {time.perf_counter() - t0:.1f} s",
            flush=True,
        )

    try:
        trainer.train(train, callbacks=[report])
    except RuntimeError as exc:
        kind = "OOM" if "out of memory" in str(exc) else "ERROR"
        print(
            f"RESULT {config} {kind} {exc} | active {mx.get_active_memory() / GIB:.2f} GiB cache "
            f"{mx.get_cache_memory() / GIB:.2f} GiB peak {mx.get_peak_memory() / GIB:.2f} GiB",
            flush=True,
        )
        return 1
    print(
        f"RESULT {config} OK peak {mx.get_peak_memory() / GIB:.2f} GiB cache {mx.get_cache_memory() / GIB:.2f} GiB "
        f"nvidia-smi {gpu_process_mb(pid)} MiB",
        flush=True,
    )
    return 0


def start_hog(gib: float) -> subprocess.Popen:
    code = (
        "import sys, time, torch; x = torch.empty(int(float(sys.argv[1]) * (1 << 30)), dtype=torch.uint8, "
        "device='cuda'); print('[hog] holding', sys.argv[1], 'GiB', flush=True); time.sleep(3600)"
    )
    hog = subprocess.Popen([sys.executable, "-c", code, str(gib)])
    time.sleep(8)  # torch import + the allocation
    return hog


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--one", help="run one configuration in this process")
    ap.add_argument("--configs", default="lora,lora-ops20,lora-cache4,full")
    ap.add_argument("--updates", type=int, default=12)
    ap.add_argument("--eval-every", type=int, default=4)
    ap.add_argument("--hog-gb", type=float, default=0.0, help="GiB a torch process holds on the GPU meanwhile")
    ap.add_argument("--timeout", type=float, default=40.0, help="seconds per configuration")
    ap.add_argument(
        "--small", action="store_true", help="batch 1 x group 4, max_length 32: to check the script on a CPU"
    )
    args = ap.parse_args(argv)
    if args.one:
        return run_one(args.one, args.updates, args.eval_every, args.small)
    hog = start_hog(args.hog_gb) if args.hog_gb else None
    try:
        for config in args.configs.split(","):
            env = dict(os.environ)
            # the trainer's cache bound (training.gpu_memory): G GiB for lora-cache<G>, off otherwise (session 4)
            env[CACHE_ENV_VAR] = config[len("lora-cache") :] if config.startswith("lora-cache") else "none"
            if config == "lora-ops20":
                env["MLX_MAX_OPS_PER_BUFFER"] = "20"
            cmd = [
                sys.executable,
                "-m",
                "harness.train.memory_probe",
                "--one",
                config,
                "--updates",
                str(args.updates),
                "--eval-every",
                str(args.eval_every),
            ] + (["--small"] if args.small else [])
            try:
                rc = subprocess.run(cmd, env=env, timeout=args.timeout).returncode
            except subprocess.TimeoutExpired:
                print(f"RESULT {config} TIMEOUT after {args.timeout:.0f} s", flush=True)
                continue
            if rc not in (0, 1):
                print(f"RESULT {config} CRASHED exit {rc}", flush=True)
    finally:
        if hog is not None:
            hog.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
