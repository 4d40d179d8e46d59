"""Adapters in TriBridRAG's mlx_qwen3 format: exported from an mlx-lm adapter, read back, and scored as
TriBridRAG defines them (W + alpha/rank * lora_B @ lora_A, merged here in numpy)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from builders import pairs, qwen3_causal_lm
from tribrid_helpers import write_mlx_lm_adapter

from mlx_cross_encoder import Qwen3Reranker, TriBridMLXReranker
from mlx_cross_encoder.llm_template import QWEN3_TEMPLATE
from mlx_cross_encoder.tribrid.adapters import convert_tribrid_adapter, export_tribrid_adapter, suffix_hash

SAME = 1e-5

# TriBridRAG server/retrieval/mlx_qwen3.py SUFFIX, and the field names its trainer and write_mlx_manifest write
TRIBRID_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
CONFIG_FIELDS = {
    "backend",
    "base_model",
    "prompt_template_version",
    "lora_rank",
    "lora_alpha",
    "lora_dropout",
    "target_modules",
    "applied_modules",
    "yes_token_id",
    "no_token_id",
    "suffix_hash",
}
MANIFEST_FIELDS = {
    "backend",
    "base_model",
    "run_id",
    "created_at",
    "prompt_template_version",
    "yes_token_id",
    "no_token_id",
    "suffix_hash",
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return qwen3_causal_lm(tmp_path_factory.mktemp("qwen3") / "tiny", seed=0)


def merged_tribrid(base, artifact, out):
    """The base checkpoint with a TriBridRAG adapter merged: W + (alpha / rank) * B @ A (its _LoRALinear)."""
    from safetensors.numpy import load_file, save_file

    cfg = json.loads((artifact / "adapter_config.json").read_text())
    scale = cfg["lora_alpha"] / cfg["lora_rank"]
    shutil.copytree(base, out)
    weights = load_file(str(base / "model.safetensors"))
    with np.load(artifact / "adapter.npz", allow_pickle=False) as npz:
        lora = {k: npz[k] for k in npz.files}
    for key in [k for k in lora if k.endswith(".lora_A")]:
        stem = key[: -len(".lora_A")]
        w = weights[stem + ".weight"]
        weights[stem + ".weight"] = (w.astype(np.float64) + scale * lora[stem + ".lora_B"] @ lora[key]).astype(w.dtype)
    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})
    return out


def test_export_is_tribrid_format_and_scores_round_trip(tiny, tmp_path):
    assert QWEN3_TEMPLATE.suffix == TRIBRID_SUFFIX
    adapter = write_mlx_lm_adapter(tiny, tmp_path / "mlx_lm")
    base = Qwen3Reranker(tiny, max_length=256)
    ours = Qwen3Reranker(tiny, max_length=256, adapter_path=adapter)
    data = pairs(12)
    expected = ours.predict(data)
    assert np.abs(expected - base.predict(data)).max() > 1e-3, "the adapter must change the scores"

    art = export_tribrid_adapter(
        adapter,
        tmp_path / "tribrid",
        base_model=str(tiny),
        yes_token_id=ours.yes_id,
        no_token_id=ours.no_id,
        run_id="run-1",
    )
    assert sorted(p.name for p in art.iterdir()) == [
        "adapter.npz",
        "adapter_config.json",
        "tribrid_reranker_manifest.json",
    ]
    cfg = json.loads((art / "adapter_config.json").read_text())
    manifest = json.loads((art / "tribrid_reranker_manifest.json").read_text())
    assert set(cfg) == CONFIG_FIELDS and set(manifest) == MANIFEST_FIELDS
    assert cfg["backend"] == manifest["backend"] == "mlx_qwen3"
    assert (cfg["lora_rank"], cfg["lora_alpha"], cfg["target_modules"]) == (4, 8.0, ["q_proj", "v_proj"])
    assert cfg["applied_modules"] == 4 and manifest["run_id"] == "run-1"
    assert cfg["suffix_hash"] == suffix_hash() and cfg["yes_token_id"] == ours.yes_id
    with np.load(art / "adapter.npz", allow_pickle=False) as npz:
        shapes = {k: npz[k].shape for k in npz.files}
    assert shapes["model.layers.0.self_attn.q_proj.lora_A"] == (4, 64)  # (rank, in)
    assert shapes["model.layers.0.self_attn.q_proj.lora_B"] == (64, 4)  # (out, rank)
    assert len(shapes) == 8

    reference = Qwen3Reranker(merged_tribrid(tiny, art, tmp_path / "merged"), max_length=256).predict(data)
    np.testing.assert_allclose(expected, reference, atol=1e-4)  # TriBridRAG's math = mlx-lm's

    back = convert_tribrid_adapter(art, tmp_path / "back")
    np.testing.assert_allclose(
        Qwen3Reranker(tiny, max_length=256, adapter_path=back).predict(data), expected, atol=SAME
    )
    hooked = Qwen3Reranker(tiny, max_length=256, adapter_path=art)  # TriBridRAG's folder as it is
    np.testing.assert_allclose(hooked.predict(data), expected, atol=SAME)
    direct = TriBridMLXReranker(model_name=str(tiny), adapter_path=art, max_length=256)
    np.testing.assert_allclose(
        direct.scores(data[0][0], [d for _, d in data[:4]]),
        ours.predict([(data[0][0], d) for _, d in data[:4]]),
        atol=SAME,
    )


def test_convert_refuses_other_backends_and_bad_tensors(tiny, tmp_path):
    adapter = write_mlx_lm_adapter(tiny, tmp_path / "mlx_lm")
    art = export_tribrid_adapter(adapter, tmp_path / "tribrid", base_model=str(tiny), yes_token_id=1, no_token_id=2)
    manifest = json.loads((art / "tribrid_reranker_manifest.json").read_text())
    (art / "tribrid_reranker_manifest.json").write_text(json.dumps({**manifest, "backend": "transformers"}))
    with pytest.raises(ValueError, match="backend 'transformers' is not 'mlx_qwen3'"):
        convert_tribrid_adapter(art, tmp_path / "x")
    with pytest.raises(FileNotFoundError, match="adapter.npz is missing"):
        convert_tribrid_adapter(tmp_path / "mlx_lm", tmp_path / "y")


def test_artifact_loads_into_tribrid_style_wrapping(tiny, tmp_path):
    """TriBridRAG loads adapter.npz with ``model.load_weights(strict=False)`` into mlx-lm's model whose q/k/v/o
    Linears it wrapped (base, lora_A, lora_B): a wrong tensor name would be ignored silently, so every exported
    name must be a parameter of that wrapping, and its scores must be the adapter's."""
    import mlx.core as mx
    import mlx.nn as nn
    from mlx.utils import tree_flatten
    from mlx_lm.utils import load_model

    class Wrapped(nn.Module):  # the wrapping TriBridRAG's apply_lora_layers describes
        def __init__(self, base, rank, scale):
            super().__init__()
            out_dim, in_dim = base.weight.shape
            self.base, self.scale = base, scale
            self.lora_A, self.lora_B = mx.zeros((rank, in_dim)), mx.zeros((out_dim, rank))

        def __call__(self, x):
            return self.base(x) + self.scale * ((x @ self.lora_A.T) @ self.lora_B.T)

    adapter = write_mlx_lm_adapter(tiny, tmp_path / "mlx_lm")
    ours = Qwen3Reranker(tiny, max_length=256, adapter_path=adapter)
    art = export_tribrid_adapter(
        adapter, tmp_path / "tribrid", base_model=str(tiny), yes_token_id=ours.yes_id, no_token_id=ours.no_id
    )
    cfg = json.loads((art / "adapter_config.json").read_text())
    model, _ = load_model(tiny)
    model.freeze()
    for layer in model.model.layers:
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            base = getattr(layer.self_attn, name)
            setattr(layer.self_attn, name, Wrapped(base, cfg["lora_rank"], cfg["lora_alpha"] / cfg["lora_rank"]))
    names = {k for k, _ in tree_flatten(model.trainable_parameters())}
    weights = mx.load(str(art / "adapter.npz"))
    assert set(weights) <= names and len(weights) == 8
    model.load_weights(list(weights.items()), strict=False)
    data = pairs(6)
    ids = ours.tokenize(data)
    scores = []
    for row in ids:
        logits = model(mx.array([row]))[0, -1]
        yes, no = logits[cfg["yes_token_id"]], logits[cfg["no_token_id"]]
        scores.append(float(mx.sigmoid(yes - no)))
    np.testing.assert_allclose(scores, ours.predict(data), atol=1e-4)


def test_fused_checkpoint_is_base_plus_tribrid_lora(tiny, tmp_path):
    from safetensors.numpy import load_file

    from mlx_cross_encoder.tribrid.adapters import fuse_tribrid_adapter

    adapter = write_mlx_lm_adapter(tiny, tmp_path / "mlx_lm", seed=7)
    art = export_tribrid_adapter(adapter, tmp_path / "tribrid", base_model=str(tiny), yes_token_id=1, no_token_id=2)
    fused = fuse_tribrid_adapter(art, tiny, tmp_path / "fused")
    reference = merged_tribrid(tiny, art, tmp_path / "merged")  # TriBridRAG's W + alpha/rank * B @ A, numpy
    got = {k: v for f in fused.glob("*.safetensors") for k, v in load_file(str(f)).items()}
    want = {k: v for f in reference.glob("*.safetensors") for k, v in load_file(str(f)).items()}
    assert set(got) <= set(want) and "model.layers.0.self_attn.q_proj.weight" in got
    for name, w in got.items():
        np.testing.assert_allclose(w, want[name], atol=1e-6, err_msg=name)
    data = pairs(6)
    np.testing.assert_allclose(
        Qwen3Reranker(fused, max_length=256).predict(data),
        Qwen3Reranker(tiny, max_length=256, adapter_path=art).predict(data),
        atol=SAME,
    )
