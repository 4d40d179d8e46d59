"""Model FLOP utilisation of harness runs: achieved FLOP/s over the chip's peak, from the model's config.json.

    python benchmarks/gpu_mfu.py results/minilm-h200.json ... > mfu.md

One row per run and scenario (``single_query``, ``offline``; older files: the run's per-query ``perf``), tokens/s
the median over the scenario's timed passes.

FLOPs per input token, counted from the config (multiply-adds x 2; embeddings, pooler, heads left out):
  encoder layer   2 * (4 H^2 + 2 H I)  [ModernBERT: 2 * (4 H^2 + 3 H I), GLU]  + attention 4 * n * H
  decoder layer   2 * (H (2 q + 2 kv) hd + 3 H I)                            + causal attention 2 * n * q * hd
with n the mean tokens per pair the harness measured (ModernBERT's local layers see min(n, window) tokens).
Achieved = tokens_per_s * FLOPs/token. Peaks per chip (dense, no sparsity) are from ``PEAKS`` with their source.
The config is read from the model folder the run recorded (``system.model_path``); where that folder is absent
(another machine), a ``local:`` random-init shape's config is rebuilt from ``harness.localshapes``' constants and
any other ``local:`` model's is read from this machine's harness cache.
"""

from __future__ import annotations

import json
import statistics
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


def shape_config(name: str) -> dict | None:
    """config.json keys of a ``harness.localshapes`` random-init shape, without building it."""
    from harness import localshapes as s

    causal = ["Qwen3ForCausalLM"]
    shapes = {
        "bert-large-shape": {**s.BERT_LARGE, "architectures": ["BertForSequenceClassification"]},
        "xlm-roberta-large-shape": {**s.XLM_ROBERTA_LARGE, "architectures": ["XLMRobertaForSequenceClassification"]},
        "modernbert-base-shape": {**s.MODERNBERT_BASE, "architectures": ["ModernBertForSequenceClassification"]},
        "qwen3-reranker-0.6b-shape": {**s.QWEN3_RERANKER_06B_SHAPE, "num_hidden_layers": 28, "architectures": causal},
        "qwen3-reranker-4b-shape": {**s.QWEN3_RERANKER_4B_SHAPE, "num_hidden_layers": 36, "architectures": causal},
    }
    if hasattr(s, "QWEN3_RERANKER_8B_SHAPE"):
        shapes["qwen3-reranker-8b-shape"] = {
            **s.QWEN3_RERANKER_8B_SHAPE,
            "num_hidden_layers": 36,
            "architectures": causal,
        }
    return shapes.get(name)


def model_config(system: dict) -> dict:
    recorded = Path(system["model_path"]) / "config.json"
    if recorded.is_file():
        return json.loads(recorded.read_text())
    model = system.get("model") or ""
    name = model.removeprefix("local:")
    if model.startswith("local:") and (config := shape_config(name)) is not None:
        return config
    if model.startswith("local:"):
        from harness.localmodels import resolve_model

        return json.loads((Path(resolve_model(model)) / "config.json").read_text())
    raise FileNotFoundError(f"{recorded}: the model folder of {model} is not on this machine")


def scenario_rates(run: dict) -> list[tuple[str, float, float]]:
    """(scenario, mean tokens per pair, median tokens/s) per scenario of the run; older files: perf."""
    scenarios = run.get("scenarios") or {}
    if not scenarios:
        perf = run.get("perf") or {}
        return [("single_query", perf["mean_tokens_per_pair"], perf["tokens_per_s"])] if perf else []
    return [
        (name, s["tokens"] / s["pairs"], statistics.median(s["tokens_per_s"]))
        for name, s in scenarios.items()
        if s.get("tokens_per_s")
    ]


def rows(path: Path):
    data = json.loads(path.read_text())
    for run in data.get("runs", []):
        system = run.get("system") or {}
        if run.get("status") != "ok" or not system.get("model_path"):
            continue
        config = model_config(system)
        chip = system.get("device_name") or (data.get("environment") or {}).get("gpu") or "NVIDIA H200"
        dtype = system.get("dtype") or "float32"
        precision = "tf32" if dtype == "float32" and system.get("float32_matmul") == "tf32" else dtype
        peak = PEAKS.get(chip, PEAKS["NVIDIA H200"])[precision]
        for scenario, n, tokens_per_s in scenario_rates(run):
            flops = flops_per_token(config, n)
            achieved = tokens_per_s * flops / 1e12
            yield run["reranker"], scenario, precision, n, flops / 1e9, tokens_per_s, achieved, achieved / peak


def main(paths: list[str]) -> None:
    print(f"Peak: {PEAK_SOURCE}.\n")
    print("| run | scenario | precision | tokens/pair | GFLOP/token | tokens/s | TFLOP/s | MFU |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for path in paths:
        for name, scenario, precision, n, gflop, tps, achieved, mfu in rows(Path(path)):
            print(
                f"| {name} | {scenario} | {precision} | {n:.0f} | {gflop:.3f} | {tps:,.0f} | {achieved:.1f} | {mfu:.1%} |"
            )


if __name__ == "__main__":
    main(sys.argv[1:])
