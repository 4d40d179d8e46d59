"""benchmarks/gpu_wheel.py: an installed pure-Python distribution repacked into a wheel that pip installs back to the
same files (the H200 staging of gguf/transformers, which the GPU image lacks or has in another version)."""

from __future__ import annotations

import base64
import filecmp
import hashlib
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import gpu_wheel  # noqa: E402

#: small pure-Python distributions that the project's environment always has (pydantic's dependencies)
PURE = "annotated_types"
COMPILED = "pydantic_core"


def test_repacked_wheel_installs_the_same_files(tmp_path):
    wheel = gpu_wheel.repack(PURE, tmp_path / "wheels")
    dist = metadata.distribution(PURE)
    assert wheel.name == f"annotated_types-{dist.version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf:  # every RECORD row's hash and size are those of the archived bytes
        names = zf.namelist()
        record = next(n for n in names if n.endswith(".dist-info/RECORD"))
        rows = [line.split(",") for line in zf.read(record).decode().splitlines()]
        assert sorted(r[0] for r in rows) == sorted(names)
        for name, digest, size in rows:
            if name == record:
                assert digest == size == ""
                continue
            data = zf.read(name)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert (digest, int(size)) == (f"sha256={expected}", len(data))
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
    )
    installed = Path(dist.locate_file("annotated_types"))
    compared = filecmp.dircmp(installed, target / "annotated_types", ignore=["__pycache__"])
    assert compared.left_only == compared.right_only == compared.diff_files == []
    assert compared.common_files  # the package's modules were compared, not an empty folder
    (info,) = [d for d in metadata.distributions(path=[str(target)]) if d.metadata["Name"] == dist.metadata["Name"]]
    assert info.version == dist.version and info.read_text("METADATA") == dist.read_text("METADATA")


def test_a_compiled_distribution_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="Root-Is-Purelib"):
        gpu_wheel.repack(COMPILED, tmp_path)
    assert not list(tmp_path.iterdir())
