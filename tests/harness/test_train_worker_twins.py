"""The harness's training workers: the PyTorch twin of a LoRA job starts from the MLX trainer's initial LoRA matrices
(``harness.train.worker.mlx_lora_init``), so the two trained rerankers agree, as full fine-tuning's twins do."""

from __future__ import annotations

import json

import mlx_cross_encoder  # noqa: F401  # isort: skip  (the optimized BLAS before mlx.core)
import numpy as np
import pytest
import torch
from builders import bert_cross_encoder, pairs
from training_helpers import toy_pairs

from harness.train.worker import train_mlx_cross_encoder, train_torch_cross_encoder
from mlx_cross_encoder.training.settings import TrainingSettings


def job(tmp_path, base, backend: str, fine_tune: str) -> dict:
    settings = TrainingSettings(
        loss="bce", batch_size=4, num_epochs=1, learning_rate=2e-2, warmup_steps=0, max_length=64, seed=0,
        fine_tune_type=fine_tune, lora_rank=4, lora_alpha=8,
    ).model_dump(mode="json", exclude={"output_dir"})  # fmt: skip
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in toy_pairs(4, 3)))
    return {
        "name": f"m-{backend}", "kind": "cross_encoder", "backend": backend, "base": str(base),
        "fine_tune": fine_tune, "instruction": None, "settings": settings, "train_file": str(train),
        "dev_file": None, "relevance_level": 1, "output_dir": str(tmp_path / backend), "progress": False,
    }  # fmt: skip


@pytest.mark.parametrize("fine_tune", ["lora", "full"])
def test_mlx_and_torch_workers_train_twins_that_score_alike(tmp_path, fine_tune):
    pytest.importorskip("datasets", reason="CrossEncoderTrainer needs the `datasets` package")
    from sentence_transformers import CrossEncoder

    base = bert_cross_encoder(tmp_path / "bert", seed=0)
    mlx_result = train_mlx_cross_encoder(job(tmp_path, base, "mlx", fine_tune))
    torch_result = train_torch_cross_encoder(job(tmp_path, base, "torch", fine_tune))
    assert mlx_result["steps"] == torch_result["steps"] == 4
    assert torch_result["lora_init"] == ("the MLX trainer's initial LoRA matrices" if fine_tune == "lora" else None)
    scores = [
        CrossEncoder(r["model_dir"], device="cpu").predict(pairs(), activation_fn=torch.nn.Identity())
        for r in (mlx_result, torch_result)
    ]
    untrained = CrossEncoder(str(base), device="cpu").predict(pairs(), activation_fn=torch.nn.Identity())
    assert np.abs(scores[0] - untrained).max() > 1e-2  # the trainings moved the scores
    np.testing.assert_allclose(scores[1], scores[0], rtol=0, atol=1e-4)


def test_llm_twins_start_from_the_mlx_lora_matrices(tmp_path):
    from builders import qwen3_causal_lm
    from training_helpers import toy_groups

    from harness.train.worker import train_mlx_llm, train_torch_llm

    base = qwen3_causal_lm(tmp_path / "qwen", seed=0)
    jobs = []
    for backend in ("mlx", "torch"):
        j = job(tmp_path, base, backend, "lora")
        j["kind"] = "llm"
        j["settings"].update(loss="listwise", group_size=3, batch_size=2, max_length=256, learning_rate=5e-3)
        (tmp_path / "groups.jsonl").write_text("".join(json.dumps(r) + "\n" for r in toy_groups(4, 3)))
        j["train_file"] = str(tmp_path / "groups.jsonl")
        jobs.append(j)
    mlx_result, torch_result = train_mlx_llm(jobs[0]), train_torch_llm(jobs[1])
    assert mlx_result["steps"] == torch_result["steps"] == 2
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.train.torch_llm import LLMRerankerScorer

    def scores(folder):
        scorer = LLMRerankerScorer(
            AutoModelForCausalLM.from_pretrained(str(folder)),
            AutoTokenizer.from_pretrained(str(folder)),
            max_length=256,
        )
        with torch.no_grad():
            return scorer.scores(pairs())[0].numpy()

    trained = [scores(r["model_dir"]) for r in (mlx_result, torch_result)]
    assert np.abs(trained[0] - scores(base)).max() > 1e-3  # the trainings moved the scores
    np.testing.assert_allclose(trained[1], trained[0], rtol=0, atol=1e-4)


def test_torch_trained_llm_folder_scores_on_mlx_as_on_torch(tmp_path):
    """The PyTorch LLM worker's merged folder (saved by transformers, which since 5.0 nests rope_theta in
    rope_parameters) is scored by the MLX backend and fit_check as transformers scores it: a Llama (SmolLM2's
    architecture) with rope_theta 100,000, not mlx-lm's 10,000 default."""
    from builders import llama_saved_by_transformers_5
    from training_helpers import toy_groups
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.train.torch_llm import LLMRerankerScorer
    from harness.train.worker import train_torch_llm
    from mlx_cross_encoder.llm_reranker import Qwen3Reranker

    base = llama_saved_by_transformers_5(tmp_path / "llama")
    j = job(tmp_path, base, "torch", "lora")
    j["kind"] = "llm"
    j["settings"].update(loss="listwise", group_size=3, batch_size=2, max_length=256, learning_rate=5e-3)
    (tmp_path / "groups.jsonl").write_text("".join(json.dumps(r) + "\n" for r in toy_groups(4, 3)))
    j["train_file"] = str(tmp_path / "groups.jsonl")
    folder = train_torch_llm(j)["model_dir"]
    scorer = LLMRerankerScorer(
        AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder), max_length=256
    )
    with torch.no_grad():
        want = scorer.scores(pairs())[0].numpy()
    got = Qwen3Reranker(folder, max_length=256).predict(pairs(), activation_fn="identity")
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
