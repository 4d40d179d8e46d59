"""Model FLOP utilisation of harness runs: achieved FLOP/s over the chip's peak, from the model's config.json.

    python benchmarks/gpu_mfu.py results/minilm-h200.json ... > mfu.md

FLOPs per input token, counted from the config (multiply-adds x 2; embeddings, pooler, heads left out):
  encoder layer   2 * (4 H^2 + 2 H I)  [ModernBERT: 2 * (4 H^2 + 3 H I), GLU]  + attention 4 * n * H
  decoder layer   2 * (H (2 q + 2 kv) hd + 3 H I)                            + causal attention 2 * n * q * hd
with n the mean tokens per pair the harness measured (ModernBERT's local layers see min(n, window) tokens).
Achieved = tokens_per_s * FLOPs/token. Peaks per chip (dense, no sparsity) are from ``PEAKS`` with their source.
The model folder must be where the run recorded it (``system.model_path``), i.e. run this where the suite ran.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

#: TFLOP/s, dense. H200 SXM: NVIDIA H200 Tensor Core GPU datasheet (2024): FP32 67, TF32 Tensor Core 494.7 (989
#: with sparsity), BF16/FP16 Tensor Core 989.4 (1,979 with sparsity) -- the same compute as the H100 SXM.
PEAKS = {"NVIDIA H200": {"float32": 67.0, "tf32": 494.7, "bfloat16": 989.4, "float16": 989.4}}
PEAK_SOURCE = "NVIDIA H200 datasheet, dense: FP32 67, TF32 494.7, BF16/FP16 989.4 TFLOP/s"


def flops_per_token(config: dict, n: float) -> float:
    H = config["hidden_size"]
    layers = config["num_hidden_layers"]
    I = config["intermediate_size"]  # noqa: E741
    arch = (config.get("architectures") or [""])[0]
    if "CausalLM" in arch:
        q = config["num_attention_heads"]
        kv = config.get("num_key_value_heads", q)
        hd = config.get("head_dim") or H // q
        per_layer = 2 * (H * (2 * q + 2 * kv) * hd + 3 * H * I) + 2 * n * q * hd
        return layers * per_layer
    if "ModernBert" in arch:
        every = config.get("global_attn_every_n_layers", 3)
        window = config.get("local_attention", 128)
        total = 0.0
        for i in range(layers):
            seen = n if i % every == 0 else min(n, window)
            total += 2 * (4 * H * H + 3 * H * I) + 4 * seen * H
        return total
    return layers * (2 * (4 * H * H + 2 * H * I) + 4 * n * H)


def rows(path: Path):
    data = json.loads(path.read_text())
    for run in data.get("runs", []):
        perf, system = run.get("perf") or {}, run.get("system") or {}
        if run.get("status") != "ok" or not perf:
            continue
        config = json.loads((Path(system["model_path"]) / "config.json").read_text())
        n = perf["mean_tokens_per_pair"]
        flops = flops_per_token(config, n)
        achieved = perf["tokens_per_s"] * flops / 1e12
        chip = system.get("device_name") or (data.get("environment") or {}).get("gpu") or "NVIDIA H200"
        dtype = system.get("dtype") or "float32"
        precision = "tf32" if dtype == "float32" and system.get("float32_matmul") == "tf32" else dtype
        peak = PEAKS.get(chip, PEAKS["NVIDIA H200"])[precision]
        yield run["reranker"], precision, n, flops / 1e9, perf["tokens_per_s"], achieved, achieved / peak


def main(paths: list[str]) -> None:
    print(f"Peak: {PEAK_SOURCE}.\n")
    print("| run | precision | tokens/pair | GFLOP/token | tokens/s | TFLOP/s | MFU |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for path in paths:
        for name, precision, n, gflop, tps, achieved, mfu in rows(Path(path)):
            print(f"| {name} | {precision} | {n:.0f} | {gflop:.3f} | {tps:,.0f} | {achieved:.1f} | {mfu:.1%} |")


if __name__ == "__main__":
    main(sys.argv[1:])
