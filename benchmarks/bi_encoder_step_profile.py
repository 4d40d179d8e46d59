"""Where an InfoNCE training step of the all-MiniLM-L6-v2 bi-encoder spends its time: MLX modes vs PyTorch (MNRL).

    python benchmarks/bi_encoder_step_profile.py [--steps 12] [--warmup 2] [--batch-size 32] [--negatives 1]
        [--max-length 256] [--modes plain,nocache,pad32,compile] [--torch] [--json OUT]
        [--model local:smollm2-135m-instruct --pooling lasttoken --lora]   (a decoder, MLX only)

Real weights (``local:all-minilm-l6-v2``), float32, full fine-tuning, the session-5 H200 recipe's batch shape
(batch 32, 1 hard negative, 256 tokens per text); the batches are the first ones of ``infonce.training_batches``
over the DL19 BM25 top-100 training examples (``harness.train.bi_encoder_data.infonce_examples``; DL19 is a
training/dev list in this project, never a test set). Every mode sees the same batches.

Per step (each phase ends with a host sync, so its work is inside its timer):
``tokenize`` (``encode_batch`` of queries and documents), ``collate`` (padded arrays), ``step`` (MLX: loss,
gradients and AdamW update evaluated with one ``mx.eval``, as ``InfoNCETrainer`` does; torch: forward, MNRL,
backward, AdamW, ``torch.cuda.synchronize``), ``sync`` (the loss read back). The first ``--warmup`` steps are
excluded, as are steps whose padded shapes the mode had not seen before (reported apart as ``new_shape_ms``: MLX's
per-shape costs, e.g. compiling).

MLX modes (``InfoNCESettings`` speed knobs; each a fresh model):
``plain`` (the trainer as in session 5: MLX's buffer cache bounded by ``training.gpu_memory``, exact widths),
``nocache`` (the cache left at MLX's limit), ``pad32`` (widths rounded up to multiples of 32), ``compile``
(``pad32`` + the step as one ``mx.compile`` graph). ``MLX_MAX_OPS_PER_BUFFER`` (set to 2 by the package's import hook
on CUDA unless set) is read once per process: run the script again with it set to compare.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODES = {
    "plain": {"pad_multiple": 1, "compile_step": False},
    "nocache": {"pad_multiple": 1, "compile_step": False},
    "pad32": {"pad_multiple": 32, "compile_step": False},
    "compile": {"pad_multiple": 32, "compile_step": True},
}


def batches(args):
    from harness.train.bi_encoder_data import infonce_examples
    from mlx_cross_encoder.training.infonce import InfoNCESettings, batch_texts, training_batches

    data = Path(args.data)
    examples, _ = infonce_examples({"dl19": (data / "bm25_top100_dl19.json", data / "qrels_dl19.txt")},
                                   negatives=args.negatives)  # fmt: skip
    settings = InfoNCESettings(batch_size=args.batch_size, max_steps=args.warmup + args.steps, seed=0)
    return [batch_texts(examples, b) for b in training_batches(examples, settings)]


def _summary(rows: list[dict], warmup: int) -> dict:
    timed = [r for r in rows[warmup:] if not r["new_shape"]]
    out = {"steps_timed": len(timed), "new_shape_ms": [round(r["total"], 1) for r in rows if r["new_shape"]]}
    for key in ("tokenize", "collate", "step", "sync", "total"):
        out[f"{key}_ms"] = round(statistics.median(r[key] for r in timed), 2) if timed else None
    tokens = sum(r["tokens"] for r in timed)
    seconds = sum(r["total"] for r in timed) / 1000
    out["tokens_per_s"] = round(tokens / seconds) if seconds else None
    return out


def run_mlx(mode: str, args, texts) -> dict:
    import mlx.core as mx

    from harness.localmodels import resolve_model
    from mlx_cross_encoder import MLXEmbedder
    from mlx_cross_encoder.training.gpu_memory import bounded_gpu_cache
    from mlx_cross_encoder.training.infonce import InfoNCESettings, InfoNCETrainer
    from mlx_cross_encoder.training.schedule import make_optimizer, make_schedule

    fine_tune = "lora" if args.lora else "full"
    settings = InfoNCESettings(batch_size=args.batch_size, fine_tune=fine_tune, **MODES[mode])
    pooling = {"pooling": args.pooling, "normalize": True} if args.pooling else {}
    embedder = MLXEmbedder(resolve_model(args.model), max_length=args.max_length, dtype="float32", **pooling)
    trainer = InfoNCETrainer(embedder, settings)
    optimizer = make_optimizer(make_schedule(2e-5, len(texts), 1, "linear"), 0.01)
    step_fn = trainer._step_fn(optimizer)
    encode, collate = embedder.tokenizer.encode_batch, embedder.collate
    seen, rows = set(), []
    mx.reset_peak_memory()
    with bounded_gpu_cache(gpu=None if mode != "nocache" else False):
        for queries, docs in texts:
            t0 = time.perf_counter()
            q, d = encode(queries), encode(docs)
            t1 = time.perf_counter()
            arrays = (*collate(q, settings.pad_multiple), *collate(d, settings.pad_multiple))
            mx.eval(*arrays)
            t2 = time.perf_counter()
            trainer.module.train()
            loss = step_fn(*arrays)
            mx.eval(trainer.module.parameters(), optimizer.state, loss)
            t3 = time.perf_counter()
            float(loss)
            t4 = time.perf_counter()
            shape = (arrays[0].shape, arrays[2].shape)
            rows.append({"tokenize": (t1 - t0) * 1e3, "collate": (t2 - t1) * 1e3, "step": (t3 - t2) * 1e3,
                         "sync": (t4 - t3) * 1e3, "total": (t4 - t0) * 1e3, "new_shape": shape not in seen,
                         "tokens": sum(len(e.ids) for e in q + d), "shape": [list(s) for s in shape]})  # fmt: skip
            seen.add(shape)
    out = _summary(rows, args.warmup)
    out.update(
        peak_mb=round(mx.get_peak_memory() / 2**20),
        distinct_shapes=len(seen),
        device=str(mx.default_device()),
        mlx_max_ops_per_buffer=os.environ.get("MLX_MAX_OPS_PER_BUFFER"),
    )
    return out


def run_torch(args, texts) -> dict:
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.losses import MultipleNegativesRankingLoss

    from harness.localmodels import resolve_model

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = SentenceTransformer(resolve_model(args.model), device=device, local_files_only=True)
    model.max_seq_length = args.max_length
    model.eval()  # dropout off, as the harness twin
    loss_fn = MultipleNegativesRankingLoss(model, scale=20.0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    rows = []
    for queries, docs in texts:
        t0 = time.perf_counter()
        qf, df = model.preprocess(queries), model.preprocess(docs)
        t1 = time.perf_counter()
        qf = {k: v.to(device) if hasattr(v, "to") else v for k, v in qf.items()}
        df = {k: v.to(device) if hasattr(v, "to") else v for k, v in df.items()}
        sync()
        t2 = time.perf_counter()
        q, d = model(qf)["sentence_embedding"], model(df)["sentence_embedding"]
        n = len(queries)
        loss = loss_fn.compute_loss_from_embeddings([q] + [d[i : i + n] for i in range(0, d.shape[0], n)], None)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        sync()
        t3 = time.perf_counter()
        loss.item()
        t4 = time.perf_counter()
        rows.append({"tokenize": (t1 - t0) * 1e3, "collate": (t2 - t1) * 1e3, "step": (t3 - t2) * 1e3,
                     "sync": (t4 - t3) * 1e3, "total": (t4 - t0) * 1e3, "new_shape": False,
                     "tokens": int(qf["attention_mask"].sum()) + int(df["attention_mask"].sum())})  # fmt: skip
    out = _summary(rows, args.warmup)
    out.update(
        device=device,
        torch=torch.__version__,
        peak_mb=round(torch.cuda.max_memory_allocated() / 2**20) if device == "cuda" else None,
    )
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="local:all-minilm-l6-v2")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "trec-dl"))
    parser.add_argument("--steps", type=int, default=12, help="timed steps per mode (after --warmup)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--negatives", type=int, default=1)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--modes", default="plain,nocache,pad32,compile", help=f"MLX modes, of {','.join(MODES)}")
    parser.add_argument("--lora", action="store_true", help="MLX LoRA r8 on the attention projections (decoders)")
    parser.add_argument("--pooling", help="override the folder's pooling (e.g. lasttoken for a causal-LM folder)")
    parser.add_argument("--torch", action="store_true", help="also time the sentence-transformers MNRL step")
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args(argv)
    import mlx_cross_encoder  # noqa: F401  (the import hook: BLAS, TF32 off, CUDA graph size, before mlx.core)

    modes = [m for m in args.modes.split(",") if m]
    for mode in modes:
        if mode not in MODES:
            parser.error(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
    texts = batches(args)
    report = {"args": vars(args), "batches": len(texts), "modes": {}}
    for mode in modes + (["torch"] if args.torch else []):  # the file is rewritten after each: a cut run keeps rows
        report["modes"][mode] = run_torch(args, texts) if mode == "torch" else run_mlx(mode, args, texts)
        print(mode, json.dumps(report["modes"][mode]), flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
