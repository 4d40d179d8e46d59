"""On a GPU an MLX training runs with MLX's buffer cache bounded (mlx_cross_encoder.training.gpu_memory): the
cache never holds more than the bound after an update, the limit in force before comes back afterwards, and the
CPU device is left alone. MLX's CUDA allocator otherwise lets the cache grow to 95% of the whole device, which ran
session 4's MiniLM LoRA training out of GPU memory beside other processes. Here the GPU is simulated (on_gpu
patched): MLX's CPU allocator keeps a buffer cache under the same set_cache_limit rule."""

from __future__ import annotations

import mlx_cross_encoder  # noqa: F401  # isort: skip
import mlx.core as mx
import pytest
from builders import bert_cross_encoder
from training_helpers import toy_pairs

from mlx_cross_encoder import MLXCrossEncoder
from mlx_cross_encoder.training import MLXCrossEncoderConfig, MLXCrossEncoderTrainer, gpu_memory

BOUND_GIB = 2e-5  # ~21 kB: below what one toy update frees


def cache_limit_now() -> int:
    previous = mx.set_cache_limit(0)
    mx.set_cache_limit(previous)
    return previous


def train_and_watch(model_dir, out) -> list[tuple[int, int]]:
    """(cache limit in force, cache bytes) after every update of a short full fine-tuning."""
    config = MLXCrossEncoderConfig(
        output_dir=str(out), loss="bce", batch_size=8, num_epochs=1, show_progress_bar=False, logging_steps=1
    )
    trainer = MLXCrossEncoderTrainer(MLXCrossEncoder(model_dir), config)
    seen = []
    trainer.train(toy_pairs(4), callbacks=[lambda tr, rec: seen.append((cache_limit_now(), mx.get_cache_memory()))])
    return seen


@pytest.fixture
def model_dir(tmp_path):
    return bert_cross_encoder(tmp_path / "m", seed=0)


def test_a_gpu_training_keeps_the_cache_under_the_bound_and_restores_the_limit(model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_memory, "on_gpu", lambda: True)
    monkeypatch.setenv(gpu_memory.CACHE_ENV_VAR, str(BOUND_GIB))
    bound = int(BOUND_GIB * (1 << 30))
    before = cache_limit_now()
    assert before > 10 * bound  # MLX's own limit is far larger (else the test proves nothing)
    seen = train_and_watch(model_dir, tmp_path / "o")
    assert len(seen) >= 2
    assert all(cache <= bound for _, cache in seen)
    assert all(limit == bound for limit, _ in seen)
    assert cache_limit_now() == before


def test_the_cpu_device_is_left_alone(model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_memory, "on_gpu", lambda: False)
    monkeypatch.setenv(gpu_memory.CACHE_ENV_VAR, str(BOUND_GIB))
    before = cache_limit_now()
    assert all(limit == before for limit, _ in train_and_watch(model_dir, tmp_path / "o"))


def test_the_bound_is_read_from_the_environment(monkeypatch):
    monkeypatch.delenv(gpu_memory.CACHE_ENV_VAR, raising=False)
    assert gpu_memory.cache_limit_bytes() == int(gpu_memory.DEFAULT_CACHE_GB * (1 << 30))
    monkeypatch.setenv(gpu_memory.CACHE_ENV_VAR, "none")
    assert gpu_memory.cache_limit_bytes() is None
    monkeypatch.setenv(gpu_memory.CACHE_ENV_VAR, "lots")
    with pytest.raises(ValueError, match=gpu_memory.CACHE_ENV_VAR):
        gpu_memory.cache_limit_bytes()
