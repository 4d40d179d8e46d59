"""Promotion: only when new > active + epsilon (TriBridRAG's rule), atomic under an injected crash."""

from __future__ import annotations

import os

import pytest

from mlx_cross_encoder.tribrid import promote as promote_mod
from mlx_cross_encoder.tribrid.promote import promote, recover, should_promote


def folder(path, text):
    path.mkdir(parents=True)
    (path / "adapter.npz").write_text(text)
    (path / "adapter_config.json").write_text(text)
    return path


def content(path):
    return {p.name: p.read_text() for p in sorted(path.iterdir())}


def test_rule():
    assert should_promote(0.5, None).promoted
    assert should_promote(0.51, 0.5).promoted
    assert not should_promote(0.5, 0.5).promoted  # strictly greater
    assert not should_promote(0.55, 0.5, epsilon=0.05).promoted
    assert should_promote(0.5501, 0.5, epsilon=0.05).promoted


def test_promotes_only_on_improvement(tmp_path):
    active = tmp_path / "models" / "active"
    assert promote(folder(tmp_path / "run1", "one"), active, new=0.4, baseline=None).promoted
    assert content(active) == {"adapter.npz": "one", "adapter_config.json": "one"}
    assert not promote(folder(tmp_path / "run2", "two"), active, new=0.4, baseline=0.4).promoted
    assert content(active)["adapter.npz"] == "one"
    assert promote(folder(tmp_path / "run3", "three"), active, new=0.6, baseline=0.4).promoted
    assert content(active)["adapter.npz"] == "three"
    assert sorted(p.name for p in active.parent.iterdir()) == ["active"]  # no temporary or backup left


@pytest.mark.parametrize("crash_at", [0, 1])  # 0: in the copy; 1: between the two renames
def test_crash_leaves_old_or_recoverable(tmp_path, monkeypatch, crash_at):
    active = folder(tmp_path / "models" / "active", "old")
    new = folder(tmp_path / "run", "new")
    real_rename, calls = os.rename, []

    def crashing_rename(a, b):
        calls.append((a, b))
        if len(calls) > crash_at:
            raise KeyboardInterrupt("crash")
        real_rename(a, b)

    monkeypatch.setattr(promote_mod.os, "rename", crashing_rename)
    with pytest.raises(KeyboardInterrupt):
        promote(new, active, new=1.0, baseline=0.0)
    monkeypatch.setattr(promote_mod.os, "rename", real_rename)
    if crash_at == 1:
        assert not active.exists()  # the window TriBridRAG's swap also has
    recover(active)
    assert content(active) == {"adapter.npz": "old", "adapter_config.json": "old"}
    assert sorted(p.name for p in active.parent.iterdir()) == ["active"]
    assert promote(new, active, new=1.0, baseline=0.0).promoted and content(active)["adapter.npz"] == "new"
