"""Hot reload of a live TriBridMLXReranker (mlx_cross_encoder.tribrid.reload): TriBridRAG artifacts changed or
promoted on disk while the reranker lives. Reference scores: a fresh Qwen3Reranker loading each artifact."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from builders import DOCUMENTS, QUERIES, qwen3_causal_lm
from tribrid_helpers import write_mlx_lm_adapter

from mlx_cross_encoder import Qwen3Reranker, TriBridMLXReranker
from mlx_cross_encoder.tribrid import promote as promote_mod
from mlx_cross_encoder.tribrid.adapters import export_tribrid_adapter
from mlx_cross_encoder.tribrid.reload import AdapterWatch, adapter_fingerprint

DOCS = DOCUMENTS[:4]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return qwen3_causal_lm(tmp_path_factory.mktemp("qwen3") / "tiny", seed=0)


@pytest.fixture(scope="module")
def artifacts(tiny, tmp_path_factory):
    """Three TriBridRAG artifacts (adapter.npz + config + manifest) of different random adapters, and each one's
    scores by a freshly loaded Qwen3Reranker."""
    root = tmp_path_factory.mktemp("artifacts")
    out = {}
    for name, seed in (("a", 3), ("b", 4), ("c", 5)):
        mlx_lm = write_mlx_lm_adapter(tiny, root / f"{name}_mlx_lm", seed=seed)
        art = export_tribrid_adapter(mlx_lm, root / name, base_model=str(tiny), yes_token_id=1, no_token_id=2)
        scores = Qwen3Reranker(tiny, max_length=256, adapter_path=art).predict([(QUERIES[0], d) for d in DOCS])
        out[name] = (art, np.asarray(scores, dtype=np.float64))
    for x, y in (("a", "b"), ("b", "c"), ("a", "c")):
        assert np.abs(out[x][1] - out[y][1]).max() > 1e-3  # the adapters are told apart by their scores
    return out


def live(tiny, active, **kw):
    return TriBridMLXReranker(model_name=str(tiny), adapter_path=active, max_length=256, **kw)


def scores(reranker):
    return np.asarray(reranker.scores(QUERIES[0], DOCS))


def test_promotion_reloads_the_new_adapter_even_with_the_old_mtime_and_size(tiny, artifacts, tmp_path):
    active = tmp_path / "models" / "active"
    shutil.copytree(artifacts["a"][0], active)
    reranker = live(tiny, active)
    np.testing.assert_allclose(scores(reranker), artifacts["a"][1], atol=1e-6)
    candidate = tmp_path / "run2"
    shutil.copytree(artifacts["b"][0], candidate)
    old, new = (active / "adapter.npz").stat(), candidate / "adapter.npz"
    assert new.stat().st_size == old.st_size  # same shapes: only the content differs
    os.utime(new, ns=(old.st_atime_ns, old.st_mtime_ns))  # copytree keeps it: TriBridRAG's (mtime, size) is blind
    assert promote_mod.promote(candidate, active, new=0.9, baseline=0.5).promoted
    np.testing.assert_allclose(scores(reranker), artifacts["b"][1], atol=1e-6)
    assert reranker.reloads == 1
    np.testing.assert_allclose(scores(reranker), artifacts["b"][1], atol=1e-6)
    assert reranker.reloads == 1  # unchanged file: no second load


def test_half_written_adapter_never_serves(tiny, artifacts, tmp_path):
    active = tmp_path / "active"
    shutil.copytree(artifacts["a"][0], active)
    reranker = live(tiny, active)
    full = (artifacts["b"][0] / "adapter.npz").read_bytes()
    (active / "adapter.npz").write_bytes(full[: len(full) // 2])  # a writer in the middle of writing in place
    np.testing.assert_allclose(scores(reranker), artifacts["a"][1], atol=1e-6)  # no error, the old adapter serves
    assert reranker.reloads == 0 and len(reranker.watch.errors) == 1 and "adapter.npz" in reranker.watch.errors[0]
    scores(reranker)
    assert len(reranker.watch.errors) == 1  # the same broken file is not rebuilt on every call
    (active / "adapter.npz").write_bytes(full)  # the writer finished
    np.testing.assert_allclose(scores(reranker), artifacts["b"][1], atol=1e-6)
    assert reranker.reloads == 1


def test_adapter_rewritten_during_the_load_is_not_used(tiny, artifacts, tmp_path):
    active = tmp_path / "active"
    shutil.copytree(artifacts["a"][0], active)
    reranker = live(tiny, active)
    real_build, calls = reranker._build, []

    def build_then_rewrite():
        built = real_build()
        if not calls:  # another writer replaced the file while this one was read
            shutil.copyfile(artifacts["c"][0] / "adapter.npz", active / "adapter.npz")
        calls.append(1)
        return built

    reranker._build = build_then_rewrite
    shutil.copyfile(artifacts["b"][0] / "adapter.npz", active / "adapter.npz")
    np.testing.assert_allclose(scores(reranker), artifacts["a"][1], atol=1e-6)  # the b load was not trusted
    assert reranker.reloads == 0 and "changed while it was loaded" in reranker.watch.errors[-1]
    np.testing.assert_allclose(scores(reranker), artifacts["c"][1], atol=1e-6)  # the file that stayed
    assert reranker.reloads == 1 and len(calls) == 2


def test_missing_adapter_between_the_renames_keeps_serving(tiny, artifacts, tmp_path, monkeypatch):
    active = tmp_path / "models" / "active"
    shutil.copytree(artifacts["a"][0], active)
    reranker = live(tiny, active)
    real_rename, calls = os.rename, []

    def crash_on_second(a, b):
        calls.append(a)
        if len(calls) == 2:
            raise OSError("crash between the renames")
        real_rename(a, b)

    monkeypatch.setattr(promote_mod.os, "rename", crash_on_second)
    with pytest.raises(OSError):
        promote_mod.promote(artifacts["b"][0], active, new=1.0, baseline=None)
    monkeypatch.setattr(promote_mod.os, "rename", real_rename)
    assert not active.exists()
    np.testing.assert_allclose(scores(reranker), artifacts["a"][1], atol=1e-6)  # TriBridRAG: loaded weights stay
    promote_mod.recover(active)  # the backup (the very file that is loaded) comes back: nothing to reload
    np.testing.assert_allclose(scores(reranker), artifacts["a"][1], atol=1e-6)
    assert reranker.reloads == 0 and not reranker.watch.errors


def test_watch_checks_at_most_once_per_period_unless_forced(tmp_path):
    (tmp_path / "adapter.npz").write_bytes(b"one")
    now = [100.0]
    watch = AdapterWatch(tmp_path, period_s=60, clock=lambda: now[0])
    watch.accept(adapter_fingerprint(tmp_path))
    (tmp_path / "adapter.npz.new").write_bytes(b"two!")
    os.replace(tmp_path / "adapter.npz.new", tmp_path / "adapter.npz")
    now[0] = 159.0
    assert watch.poll(lambda: "b") is None  # 59 s after the load: not due
    assert watch.poll(lambda: "b", force=True) == "b"  # promotion: checked at once
    (tmp_path / "adapter.npz.new").write_bytes(b"three")
    os.replace(tmp_path / "adapter.npz.new", tmp_path / "adapter.npz")
    now[0] = 218.0
    assert watch.poll(lambda: "c") is None
    now[0] = 219.0
    assert watch.poll(lambda: "c") == "c"
    assert watch.poll(lambda: "d", force=True) is None  # unchanged
    with pytest.raises(ValueError, match="period_s"):
        AdapterWatch(tmp_path, period_s=-1)


def test_reload_period_from_env(tiny, artifacts, tmp_path):
    from mlx_cross_encoder.tribrid.settings import settings_from_env

    base = {"RERANKER_MODE": "mlx", "MLX_RERANKER_MODEL": str(tiny)}
    assert settings_from_env({**base, "MLX_RERANKER_RELOAD_PERIOD_SEC": "60"}).reload_period_s == 60.0
    assert settings_from_env(base).reload_period_s == 0.0
    with pytest.raises(ValueError, match="MLX_RERANKER_RELOAD_PERIOD_SEC='soon' is not a number"):
        settings_from_env({**base, "MLX_RERANKER_RELOAD_PERIOD_SEC": "soon"})
    with pytest.raises(ValueError, match="MLX_RERANKER_RELOAD_PERIOD_SEC=-1.0"):
        settings_from_env({**base, "MLX_RERANKER_RELOAD_PERIOD_SEC": "-1"})
    active = tmp_path / "active"
    shutil.copytree(artifacts["a"][0], active)
    env = {**base, "MLX_RERANKER_ADAPTER": str(active), "MLX_RERANKER_MAX_LENGTH": "256"}
    reranker = TriBridMLXReranker.from_env({**env, "MLX_RERANKER_RELOAD_PERIOD_SEC": "3600"})
    shutil.copyfile(artifacts["b"][0] / "adapter.npz", active / "adapter.npz")
    np.testing.assert_allclose(scores(reranker), artifacts["a"][1], atol=1e-6)  # next check in an hour
    assert reranker.maybe_reload(force=True)
    np.testing.assert_allclose(scores(reranker), artifacts["b"][1], atol=1e-6)
