"""PyTorch training baselines (harness.train.torch_*) with the MLX trainers' settings, on tiny models."""

import mlx_cross_encoder  # noqa: F401  # isort: skip  (loads the optimized BLAS before mlx.core)
import mlx.core as mx
import numpy as np
import pytest
import torch
from builders import bert_cross_encoder, pairs, qwen3_causal_lm
from mlx.utils import tree_flatten
from training_helpers import toy_groups, toy_pairs

from harness.train.torch_common import settings_of, torch_loss
from harness.train.torch_encoder import load_cross_encoder_torch, train_cross_encoder_torch
from harness.train.torch_llm import LLMRerankerScorer, train_llm_reranker_torch
from mlx_cross_encoder import MLXCrossEncoder
from mlx_cross_encoder.training import (
    MLXCrossEncoderConfig,
    MLXCrossEncoderTrainer,
    Qwen3RerankerConfig,
    Qwen3RerankerTrainer,
    losses,
)


def needs_datasets():
    # CrossEncoderTrainer needs `datasets` (sentence-transformers' [train] extra), not in pyproject's [torch] extra yet
    pytest.importorskip("datasets", reason="CrossEncoderTrainer needs the `datasets` package")


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return bert_cross_encoder(tmp_path_factory.mktemp("bert"), seed=0)


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory):
    return qwen3_causal_lm(tmp_path_factory.mktemp("qwen3"), seed=0)


@pytest.mark.parametrize("name", ["bce", "mse", "listwise", "margin_mse", "listwise_kl"])
def test_torch_losses_equal_the_mlx_losses(name):
    """Values and gradients (w.r.t. the scores) of each loss, MLX against the torch trainers' ``torch_loss``."""
    rng = np.random.default_rng(1)
    s, t = rng.normal(0, 2, 12).astype(np.float32), rng.normal(0, 2, 12).astype(np.float32)
    y = (rng.uniform(size=12) > 0.5).astype(np.float32)
    kw = dict(pos_weight=2.5, temperature=0.7, teacher_temperature=0.3)

    def mlx_loss(x):
        return losses.compute_loss(name, x, mx.array(y), mx.array(t), 4, **kw)

    want, want_grad = mx.value_and_grad(mlx_loss)(mx.array(s))
    x = torch.tensor(s, requires_grad=True)
    got = torch_loss(name, x, torch.tensor(y), torch.tensor(t), 4, **kw)
    got.backward()
    assert float(got) == pytest.approx(want.item(), rel=1e-5)
    np.testing.assert_allclose(x.grad.numpy(), np.array(want_grad), rtol=1e-4, atol=1e-7)


def test_torch_settings_take_the_mlx_config():
    cfg = MLXCrossEncoderConfig(
        loss="listwise",
        group_size=5,
        learning_rate=3e-5,
        batch_size=7,
        fine_tune_type="lora",
        lora_rank=4,
        warmup_ratio=0.2,
        seed=9,
    )
    settings = settings_of(cfg, num_epochs=2)
    assert (settings.loss, settings.group_size, settings.learning_rate, settings.batch_size) == ("listwise", 5, 3e-5, 7)
    assert (settings.fine_tune_type, settings.lora_rank, settings.warmup_ratio, settings.seed, settings.num_epochs) == (
        "lora",
        4,
        0.2,
        9,
        2,
    )


def test_cross_encoder_lora_trains_saves_and_reloads_the_head(bert_dir, tmp_path):
    needs_datasets()
    from sentence_transformers import CrossEncoder

    base = CrossEncoder(str(bert_dir), device="cpu")
    base_head = base[0].model.classifier.weight.detach().clone()
    result = train_cross_encoder_torch(
        bert_dir,
        toy_pairs(4),
        toy_groups(3, seed=1),
        loss="bce",
        pos_weight=3.0,
        fine_tune_type="lora",
        lora_rank=4,
        lora_alpha=8,
        learning_rate=5e-3,
        batch_size=4,
        num_epochs=3,
        output_dir=str(tmp_path),
    )
    model = result["model"]
    head = dict(model[0].model.named_parameters())["base_model.model.classifier.modules_to_save.default.weight"]
    assert head.requires_grad and not torch.allclose(head, base_head)  # the head trained
    trained = model.predict(pairs(), show_progress_bar=False)
    reloaded = load_cross_encoder_torch(bert_dir, result["output_dir"])
    np.testing.assert_allclose(reloaded.predict(pairs(), show_progress_bar=False), trained, rtol=0, atol=1e-6)
    assert np.abs(base.predict(pairs(), show_progress_bar=False) - trained).max() > 1e-4  # 100x the reload atol
    assert result["steps"] == result["total_steps_planned"] == 12  # 16 pairs / 4 per batch, 3 epochs
    assert result["tokens_per_s"] > 0 and result["peak_memory_bytes"] > 0 and result["train_time_s"] > 0
    assert set(result["final_metrics"]) == {"ndcg@10", "mrr@10"}


def test_cross_encoder_full_listwise_learns_the_toy_task(bert_dir, tmp_path):
    needs_datasets()
    data = toy_groups(8)
    result = train_cross_encoder_torch(
        bert_dir,
        data,
        data,
        loss="listwise",
        group_size=4,
        learning_rate=5e-3,
        batch_size=8,
        num_epochs=20,
        warmup_ratio=0.0,
        output_dir=str(tmp_path),
        logging_steps=1,
    )
    logged = [h["loss"] for h in result["log_history"] if "loss" in h]
    assert len(logged) == result["steps"] == 20
    # (slower than the MLX run of the same recipe: transformers' BERT trains with dropout 0.1)
    assert np.mean(logged[-4:]) < 0.5 * np.mean(logged[:4]), logged
    assert result["final_metrics"]["ndcg@10"] > 0.9, result["final_metrics"]
    # the saved model is a plain sentence-transformers directory with the trained scores
    reloaded = load_cross_encoder_torch(result["output_dir"])
    np.testing.assert_allclose(
        reloaded.predict(pairs(), show_progress_bar=False),
        result["model"].predict(pairs(), show_progress_bar=False),
        atol=1e-6,
    )


def test_llm_scorer_matches_the_mlx_reranker(qwen_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mlx_cross_encoder.llm_reranker import Qwen3Reranker

    scorer = LLMRerankerScorer(
        AutoModelForCausalLM.from_pretrained(str(qwen_dir)), AutoTokenizer.from_pretrained(str(qwen_dir)), max_length=64
    )
    reference = Qwen3Reranker(qwen_dir, max_length=64)  # 64 tokens: long documents are cut, as in the reference
    assert scorer.encode(pairs()) == reference.tokenize(pairs())
    with torch.no_grad():
        got = scorer.scores(pairs())[0].numpy()
    np.testing.assert_allclose(got, reference.predict(pairs(), activation_fn="identity"), rtol=0, atol=1e-4)


def test_llm_lora_torch_trainer_follows_the_mlx_trainer_update_for_update(qwen_dir, tmp_path):
    """From one LoRA initialization (the MLX trainer's, copied into peft), the two trainers make the same updates.

    8 updates with everything the recipe does switched on: warmup then linear decay, weight decay, clipping
    (max_grad_norm 1.2: some updates are clipped, some are not), and accumulation over micro-batches of unequal
    size (3 + 3 groups, then 2). Dropout is off: the frameworks draw different masks. Tolerance: float32 with
    different kernels and reduction orders; measured agreement is ~1e-5 relative on losses and grad norms and
    ~1e-5 absolute on the LoRA weights after 8 updates, asserted with a 10x margin. A recipe difference is far
    larger: different LoRA initializations alone (what the trainers drew before) differ by 12% in the step-1
    grad norm and 6% in the step-6 loss.
    """
    settings = dict(
        loss="listwise",
        group_size=4,
        learning_rate=5e-3,
        num_epochs=4,
        batch_size=3,
        gradient_accumulation_steps=2,
        lora_rank=4,
        lora_alpha=8,
        max_length=256,
        warmup_ratio=0.25,
        lr_scheduler="linear",
        max_grad_norm=1.2,
        weight_decay=0.01,
        lora_dropout=0.0,
    )
    data = toy_groups(8)
    mlx_trainer = Qwen3RerankerTrainer(
        Qwen3RerankerConfig(
            model_name=str(qwen_dir),
            output_dir=str(tmp_path / "mlx"),
            show_progress_bar=False,
            logging_steps=1,
            **settings,
        )
    )
    init = mlx_trainer.prepare_model().save_adapter(tmp_path / "init")
    result = train_llm_reranker_torch(
        qwen_dir, data, data, settings, output_dir=str(tmp_path / "torch"), lora_init=init
    )
    mlx_trainer.train(data)
    torch_hist, mlx_hist = result["history"], [r for r in mlx_trainer.history if r["type"] == "train"]
    assert len(torch_hist) == len(mlx_hist) == result["steps"] == 8  # 2 updates per epoch (6 groups, then 2)
    norms = [h["grad_norm"] for h in mlx_hist]
    assert min(norms) < 1.2 < max(norms)  # clipping both applies and does not
    assert [h["lr"] for h in torch_hist] == pytest.approx([h["lr"] for h in mlx_hist], rel=1e-6)
    assert [h["loss"] for h in torch_hist] == pytest.approx([h["loss"] for h in mlx_hist], rel=1e-4)
    assert norms == pytest.approx([h["grad_norm"] for h in torch_hist], rel=1e-4)
    mlx_weights = {k: np.array(v) for k, v in tree_flatten(mlx_trainer.model.trainable_parameters())}
    compared = 0
    for name, p in result["model"].named_parameters():
        if ".lora_" in name:
            module = name.split("base_model.model.", 1)[-1].split(".lora_")[0]
            key = f"{module}.lora_a" if ".lora_A." in name else f"{module}.lora_b"
            np.testing.assert_allclose(p.detach().numpy(), mlx_weights[key].T, rtol=0, atol=1e-4, err_msg=name)
            compared += 1
    assert compared == len(mlx_weights) > 0
    assert (tmp_path / "torch" / "final" / "adapter_config.json").is_file()  # LoRA by default, as the MLX config
    assert result["tokens_per_s"] > 0 and set(result["final_metrics"]) == {"ndcg@10", "mrr@10"}
    # the peft adapter reloads onto the base model with the trained scores
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    reloaded = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(str(qwen_dir)), str(tmp_path / "torch" / "final")
    ).eval()
    scorer = result["scorer"]
    with torch.no_grad():
        trained = scorer.scores(pairs(6))[0].numpy()
        again = LLMRerankerScorer(reloaded, scorer.tokenizer, max_length=256).scores(pairs(6))[0].numpy()
    np.testing.assert_allclose(again, trained, rtol=0, atol=1e-5)


def test_cross_encoder_trainer_uses_the_mlx_schedule_and_no_dropout(bert_dir, tmp_path):
    needs_datasets()
    # 24 pairs in batches of 4: 6 updates; warmup over 2, then linear decay over 4 (written out)
    result = train_cross_encoder_torch(
        bert_dir,
        toy_pairs(6, 3),
        None,
        loss="bce",
        batch_size=4,
        learning_rate=1e-3,
        warmup_steps=2,
        logging_steps=1,
        output_dir=str(tmp_path),
    )
    lrs = [h["learning_rate"] for h in result["log_history"] if "learning_rate" in h]
    assert lrs == pytest.approx([1e-3 * f for f in (0.5, 1.0, 1.0, 0.75, 0.5, 0.25)], rel=1e-6)
    model = result["model"]
    model.train()  # the MLX encoders have no dropout; the torch baseline trains without it too
    features = model.tokenizer(["q a"], ["d b"], return_tensors="pt")
    with torch.no_grad():
        a, b = model.model(**features).logits, model.model(**features).logits
    assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("loss", "fine_tune", "batch", "accum", "epochs", "updates"),
    [
        (
            "bce",
            "full",
            3,
            4,
            3,
            6,
        ),  # 16 pairs: micro-batches 3+3+3+3 and 3+1 per epoch (unequal, cut at the epoch end)
        ("listwise", "full", 2, 2, 2, 4),
        ("listwise_kl", "full", 2, 2, 2, 4),
        ("bce", "lora", 4, 1, 2, 8),
    ],
)
def test_cross_encoder_torch_trainer_follows_the_mlx_trainer_update_for_update(
    bert_dir, tmp_path, loss, fine_tune, batch, accum, epochs, updates
):
    """From the same weights (LoRA: the MLX trainer's initial LoRA matrices, renamed with the MLX model's
    ``hf_weights``, given as ``lora_init``) the Trainer gets the MLX micro-batches in their order, each micro-batch's
    loss weighted for example-weighted accumulation, the MLX schedule and AdamW groups, and no dropout, so both
    make the same updates, with warmup, decay and clipping at 0.5 (some updates are clipped, some not).
    Tolerance as for the LLM trainers: float32 with different kernels agrees to ~1e-6 relative here; the asserted
    1e-4 (losses, final scores) and 1e-3 (grad norms, some of which are ~1e-3 small) leave a margin, while any
    recipe difference (HF's own shuffling, schedule or accumulation, dropout) moves the first updates by percents."""
    needs_datasets()
    settings = dict(
        loss=loss,
        batch_size=batch,
        group_size=4,
        num_epochs=epochs,
        learning_rate=1e-3,
        warmup_steps=2,
        max_grad_norm=0.5,
        fine_tune_type=fine_tune,
        lora_rank=4,
        lora_alpha=8,
        gradient_accumulation_steps=accum,
    )
    data = toy_pairs(4, 3) if loss == "bce" else toy_groups(8, 3, teacher=loss == "listwise_kl")
    if loss == "listwise_kl":
        settings["teacher_temperature"] = 0.5
    mlx_trainer = MLXCrossEncoderTrainer(
        MLXCrossEncoder(bert_dir),
        MLXCrossEncoderConfig(output_dir=str(tmp_path / "mlx"), show_progress_bar=False, logging_steps=1, **settings),
    )
    lora_init = None
    if fine_tune == "lora":
        initial = mx.load(str(mlx_trainer.prepare_model().save_adapter(tmp_path / "init") / "adapters.safetensors"))
        lora_init = tmp_path / "init-hf"
        lora_init.mkdir()
        hf_names = mlx_trainer.encoder.model.hf_weights(dict(initial))
        mx.save_safetensors(str(lora_init / "adapters.safetensors"), {k: v for k, v in hf_names.items() if "lora" in k})
    result = train_cross_encoder_torch(
        bert_dir, data, None, settings, output_dir=str(tmp_path / "torch"), logging_steps=1, lora_init=lora_init
    )
    mlx_trainer.train(data)
    mlx_hist = [h for h in mlx_trainer.history if h["type"] == "train"]
    torch_hist = [h for h in result["log_history"] if "loss" in h]
    assert len(mlx_hist) == len(torch_hist) == result["steps"] == updates
    assert [h["learning_rate"] for h in torch_hist] == pytest.approx([h["lr"] for h in mlx_hist], rel=1e-6)
    assert [h["loss"] for h in torch_hist] == pytest.approx([h["loss"] for h in mlx_hist], rel=1e-4)
    assert [h["grad_norm"] for h in torch_hist] == pytest.approx([h["grad_norm"] for h in mlx_hist], rel=1e-3, abs=1e-6)
    if loss == "bce":
        assert min(h["grad_norm"] for h in mlx_hist) < 0.5 < max(h["grad_norm"] for h in mlx_hist)
    trained = result["model"].predict(pairs(), activation_fn=torch.nn.Identity(), show_progress_bar=False)
    reference = mlx_trainer.predict_scores(pairs())
    if loss in ("listwise", "listwise_kl"):
        # a shared offset does not change a softmax over a group: the head bias's gradient is zero up to rounding,
        # and Adam scales that noise into steps of ~0.1 * lr, differently in each framework. Compare up to it.
        trained, reference = trained - trained.mean(), reference - reference.mean()
    np.testing.assert_allclose(trained, reference, rtol=0, atol=1e-4)
