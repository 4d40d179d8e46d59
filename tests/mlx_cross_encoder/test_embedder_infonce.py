"""InfoNCE (mlx_cross_encoder.training.infonce) against sentence-transformers' MultipleNegativesRankingLoss: the loss
and its gradients on identical embeddings, and full fine-tuning update for update against the PyTorch twin
(harness.train.bi_encoder_torch: a SentenceTransformer trained with MNRL on the same batches)."""

from __future__ import annotations

import builders
import numpy as np
import pytest

from mlx_cross_encoder.training.infonce import (
    InfoNCEExample,
    InfoNCESettings,
    InfoNCETrainer,
    batch_order,
    infonce_loss,
)


@pytest.mark.parametrize(("scale", "negatives"), [(20.0, 2), (7.0, 0)])
def test_infonce_loss_and_gradients_equal_multiple_negatives_ranking_loss(scale, negatives):
    import mlx.core as mx
    import torch
    from sentence_transformers.losses import MultipleNegativesRankingLoss

    rng = np.random.default_rng(1)
    n, dim = 5, 8
    q = rng.normal(size=(n, dim)).astype(np.float32)
    d = rng.normal(size=(n * (1 + negatives), dim)).astype(np.float32)

    tq, td = torch.tensor(q, requires_grad=True), torch.tensor(d, requires_grad=True)
    columns = [tq] + [td[i : i + n] for i in range(0, len(d), n)]
    want = MultipleNegativesRankingLoss(None, scale=scale).compute_loss_from_embeddings(columns, None)
    want.backward()

    loss, (gq, gd) = mx.value_and_grad(lambda a, b: infonce_loss(a, b, scale), argnums=(0, 1))(mx.array(q), mx.array(d))
    np.testing.assert_allclose(float(loss), float(want), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(np.array(gq), tq.grad.numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.array(gd), td.grad.numpy(), atol=1e-5, rtol=0)


def test_batch_order_is_seeded_full_and_never_repeats_a_query_in_a_batch():
    examples = [InfoNCEExample(f"q{i % 5}", f"d{i}", qid=f"q{i % 5}") for i in range(23)]
    batches = batch_order(examples, 4, seed=3, epoch=0)
    assert batches == batch_order(examples, 4, seed=3, epoch=0)
    assert batches != batch_order(examples, 4, seed=3, epoch=1)
    assert all(len(b) == 4 and len({examples[i].qid for i in b}) == 4 for b in batches)
    flat = [i for b in batches for i in b]
    assert len(flat) == len(set(flat)) and len(flat) >= len(examples) - 3 * 4


def _examples() -> list[InfoNCEExample]:
    return builders.infonce_examples()


@pytest.fixture()
def st_folder(tmp_path):
    from sentence_transformers import SentenceTransformer, models

    bert = builders.bert_cross_encoder(tmp_path / "bert", seed=2)
    encoder = models.Transformer(str(bert), max_seq_length=32)
    pooling = models.Pooling(encoder.get_embedding_dimension(), pooling_mode="mean")
    SentenceTransformer(modules=[encoder, pooling], device="cpu").save(str(tmp_path / "st"))
    return tmp_path / "st"


def test_full_fine_tuning_matches_sentence_transformers_mnrl_update_for_update(st_folder):
    from sentence_transformers import SentenceTransformer

    from harness.train.bi_encoder_torch import train_sentence_transformer
    from mlx_cross_encoder import MLXEmbedder

    examples = _examples()
    settings = InfoNCESettings(batch_size=3, epochs=2, learning_rate=5e-3, warmup_ratio=0.25, scale=10.0, seed=1)
    mlx = MLXEmbedder(st_folder)
    before = mlx.encode(builders.DOCUMENTS)
    mine = InfoNCETrainer(mlx, settings).train(examples)
    st = SentenceTransformer(str(st_folder), device="cpu")
    theirs = train_sentence_transformer(st, examples, settings)
    assert mine["steps"] == theirs["steps"] >= 4 and mine["tokens"] == theirs["tokens"]
    np.testing.assert_allclose(mine["losses"], theirs["losses"], atol=1e-4, rtol=0)
    after = mlx.encode(builders.DOCUMENTS)
    assert np.abs(after - before).max() > 1e-2  # the weights moved
    np.testing.assert_allclose(after, st.encode(builders.DOCUMENTS, convert_to_numpy=True), atol=1e-4, rtol=0)


@pytest.mark.parametrize("family", ["decoder", "encoder"])
def test_lora_trains_only_the_adapters(tmp_path, family):
    import mlx.core as mx
    from mlx.utils import tree_flatten

    from mlx_cross_encoder import MLXEmbedder

    if family == "decoder":
        folder = builders.qwen3_causal_lm(tmp_path / "qwen3", seed=1)
        mlx = MLXEmbedder(folder, pooling="lasttoken", max_length=32)
        with pytest.raises(ValueError, match="LoRA"):
            InfoNCETrainer(MLXEmbedder(folder), InfoNCESettings(fine_tune="full"))
    else:
        mlx = MLXEmbedder(builders.bert_cross_encoder(tmp_path / "bert", seed=1), max_length=32)
    module = mlx.model.model if mlx.is_decoder else mlx.model
    base = {k: np.array(v) for k, v in tree_flatten(module.parameters())}
    examples = _examples()
    trainer = InfoNCETrainer(mlx, InfoNCESettings(fine_tune="lora", batch_size=3, epochs=3, learning_rate=2e-2))
    keys = trainer.adapter_config["keys"]
    assert keys and all(k.endswith("_proj") if mlx.is_decoder else "classifier" not in k for k in keys)
    first = float(trainer.loss(*_batch(examples)))
    summary = trainer.train(examples)
    assert float(trainer.loss(*_batch(examples))) < first and summary["steps"] >= 6
    after = dict(tree_flatten(module.parameters()))
    frozen = {k: v for k, v in after.items() if "lora_" not in k}
    assert {k.replace(".linear.", ".") for k in frozen} == set(base)  # LoRALinear wraps the base as .linear
    assert all(np.array_equal(np.array(v), base[k.replace(".linear.", ".")]) for k, v in frozen.items())
    assert any(float(mx.abs(v).max()) > 0 for k, v in after.items() if k.endswith("lora_b"))


def _batch(examples):
    from mlx_cross_encoder.training.infonce import batch_texts

    return batch_texts(examples, [0, 2, 4])


def test_save_pretrained_writes_the_trained_weights_as_a_folder_sentence_transformers_loads(st_folder, tmp_path):
    from safetensors import safe_open
    from sentence_transformers import SentenceTransformer

    from mlx_cross_encoder import MLXEmbedder

    mlx = MLXEmbedder(st_folder)
    settings = InfoNCESettings(batch_size=3, max_steps=3, learning_rate=5e-3, scale=10.0, seed=1)
    assert InfoNCETrainer(mlx, settings).train(_examples())["steps"] == 3
    out = mlx.save_pretrained(tmp_path / "trained")
    texts = builders.DOCUMENTS
    trained = mlx.encode(texts)
    assert np.abs(trained - MLXEmbedder(st_folder).encode(texts)).max() > 1e-2  # it is not the source folder
    np.testing.assert_allclose(SentenceTransformer(str(out), device="cpu").encode(texts), trained, atol=1e-4, rtol=0)
    np.testing.assert_allclose(MLXEmbedder(out).encode(texts), trained, atol=1e-6, rtol=0)
    with (
        safe_open(str(st_folder / "model.safetensors"), "np") as a,
        safe_open(str(out / "model.safetensors"), "np") as b,
    ):
        assert set(a.keys()) == set(b.keys()) and all(a.get_tensor(k).shape == b.get_tensor(k).shape for k in a.keys())
    with pytest.raises(ValueError, match="loaded from"):
        mlx.save_pretrained(st_folder)


def test_max_steps_takes_the_first_batches_of_as_many_epochs_as_needed():
    from mlx_cross_encoder.training.infonce import training_batches

    examples = _examples()
    epoch0, epoch1 = (batch_order(examples, 3, seed=1, epoch=e) for e in (0, 1))
    steps = len(epoch0) + 1
    assert training_batches(examples, InfoNCESettings(batch_size=3, seed=1, max_steps=steps)) == epoch0 + epoch1[:1]
    assert training_batches(examples, InfoNCESettings(batch_size=3, seed=1, epochs=2)) == epoch0 + epoch1


@pytest.mark.parametrize("script", [[0.3, 0.1, 0.8, 0.8, 0.2], [0.9, 0.1, 0.5, 0.9, 0.2]], ids=["mid", "step0"])
def test_dev_selection_keeps_the_first_best_step_on_both_stacks(st_folder, script):
    """Both trainers evaluate at step 0, every eval_steps and the last update, keep the first best dev value (a
    tie keeps the earlier step) and end with that step's weights: here the weights seen by the evaluation that
    scored best (step 0: the untrained model), not the last ones."""
    from sentence_transformers import SentenceTransformer

    from harness.train.bi_encoder_torch import train_sentence_transformer
    from mlx_cross_encoder import MLXEmbedder
    from mlx_cross_encoder.training.infonce import eval_points, training_batches

    examples, texts = _examples(), builders.DOCUMENTS[:4]
    settings = InfoNCESettings(batch_size=3, max_steps=7, eval_steps=2, learning_rate=5e-3, scale=10.0, seed=1)
    assert eval_points(len(training_batches(examples, settings)), 2) == [0, 2, 4, 6, 7]
    best = script.index(max(script))
    mlx, st = MLXEmbedder(st_folder), SentenceTransformer(str(st_folder), device="cpu")
    results = {}
    for name, encode, train in (
        ("mlx", mlx.encode, lambda ev: InfoNCETrainer(mlx, settings).train(examples, evaluate=ev)),
        ("torch", lambda t: st.encode(t, convert_to_numpy=True), lambda ev: train_sentence_transformer(
            st, examples, settings, evaluate=ev)),
    ):  # fmt: skip
        seen: list[np.ndarray] = []

        def evaluate(seen=seen, encode=encode):
            seen.append(np.array(encode(texts)))
            return {"ndcg@10": script[len(seen) - 1], "mrr@10": 0.0}

        chosen = train(evaluate)["selection"]
        assert [e["step"] for e in chosen["evaluations"]] == [0, 2, 4, 6, 7]
        assert chosen["best_step"] == [0, 2, 4, 6, 7][best] and chosen["best_metrics"]["ndcg@10"] == max(script)
        improved = [e["improved"] for e in chosen["evaluations"]]
        assert improved[best] and not any(improved[best + 1 :])
        final = np.array(encode(texts))
        np.testing.assert_allclose(final, seen[best], atol=1e-6, rtol=0)  # the kept step's weights
        assert np.abs(final - seen[-1]).max() > 1e-2  # not the last step's
        results[name] = final
    np.testing.assert_allclose(results["mlx"], results["torch"], atol=1e-4, rtol=0)


@pytest.mark.parametrize("family", ["encoder", "decoder"])
def test_padding_to_a_multiple_trains_as_exact_widths(tmp_path, st_folder, family):
    """``pad_multiple`` (a speed knob: fewer distinct shapes) masks its padding: the same losses and weights as
    exact-width batches, with mean pooling (encoder) and last-token pooling (decoder LoRA)."""
    from mlx_cross_encoder import MLXEmbedder

    examples = _examples()
    if family == "decoder":
        folder = builders.qwen3_causal_lm(tmp_path / "qwen3", seed=1)
        load = lambda: MLXEmbedder(folder, pooling="lasttoken", max_length=32)  # noqa: E731
        recipe = {"fine_tune": "lora", "learning_rate": 2e-2}
    else:
        load = lambda: MLXEmbedder(st_folder)  # noqa: E731
        recipe = {"learning_rate": 5e-3}
    runs = []
    for pad in (None, 16):
        mlx = load()
        settings = InfoNCESettings(batch_size=3, max_steps=4, scale=10.0, seed=1, pad_multiple=pad, **recipe)
        widths = {mlx.collate(mlx.tokenizer.encode_batch(t), pad)[0].shape[1] for t in _batch(examples)}
        runs.append((InfoNCETrainer(mlx, settings).train(examples)["losses"], mlx.encode(builders.DOCUMENTS), widths))
    (exact, emb_exact, _), (padded, emb_padded, widths) = runs
    assert all(w % 16 == 0 for w in widths)  # the padded run did pad
    np.testing.assert_allclose(padded, exact, atol=1e-5, rtol=0)
    np.testing.assert_allclose(emb_padded, emb_exact, atol=1e-5, rtol=0)


def test_compiled_step_trains_as_the_plain_step(tmp_path):
    """``compile_step`` (value_and_grad + AdamW as one ``mx.compile`` graph, the model and optimizer state its
    implicit inputs/outputs) gives the plain step's losses and weights (decoder LoRA, last-token pooling)."""
    from mlx_cross_encoder import MLXEmbedder

    folder = builders.qwen3_causal_lm(tmp_path / "qwen3", seed=1)
    runs = []
    for compiled in (False, True):
        mlx = MLXEmbedder(folder, pooling="lasttoken", max_length=32)
        settings = InfoNCESettings(fine_tune="lora", batch_size=3, max_steps=4, learning_rate=2e-2, pad_multiple=16,
                                   compile_step=compiled)  # fmt: skip
        summary = InfoNCETrainer(mlx, settings).train(_examples())
        assert (summary["compiled_step"], summary["pad_multiple"]) == (compiled, 16)
        runs.append((summary["losses"], mlx.encode(builders.DOCUMENTS)))
    (plain, emb_plain), (compiled, emb_compiled) = runs
    assert len(set(np.round(plain, 4))) == len(plain)  # the weights moved between the steps
    np.testing.assert_allclose(compiled, plain, atol=1e-5, rtol=0)
    np.testing.assert_allclose(emb_compiled, emb_plain, atol=1e-5, rtol=0)
