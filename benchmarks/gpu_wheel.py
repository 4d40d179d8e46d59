"""Repack an installed pure-Python distribution into a wheel, offline (issue 12: the GPU image lacks ``gguf``).

The lent H200 has no package registry and this box has no ``pip download``; a pure-Python package installed in the
project's .venv holds everything its wheel held: the files its RECORD lists inside site-packages (the package and its
``.dist-info``). This writes them back into ``<name>-<version>-<tag>.whl`` with a fresh RECORD (sha256 of each
file), leaving out what pip wrote at install time (INSTALLER, REQUESTED, direct_url.json, RECORD itself, byte code,
console-script launchers outside site-packages: pip makes those again from entry_points.txt). Refuses a
distribution whose WHEEL file says it is not purelib (compiled extensions are platform-bound).

    .venv/bin/python benchmarks/gpu_wheel.py gguf --dest .whl     # -> .whl/gguf-0.19.0-py3-none-any.whl
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import sys
import zipfile
from email.parser import Parser
from importlib import metadata
from pathlib import Path

#: written by the installer, not part of the wheel (PEP 376 / 610 / 627)
INSTALL_ONLY = {"INSTALLER", "REQUESTED", "direct_url.json", "RECORD"}


def record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def wheel_files(dist: metadata.Distribution) -> list[tuple[str, Path]]:
    """(archive name, installed path) of every file of the wheel, dist-info last (RECORD is added after them)."""
    files = []
    for f in dist.files or []:
        name = f.as_posix()
        if name.startswith("../") or "__pycache__/" in name or name.endswith(".pyc"):
            continue
        if ".dist-info/" in name and name.rsplit("/", 1)[1] in INSTALL_ONLY:
            continue
        files.append((name, Path(f.locate())))
    return sorted(files, key=lambda item: (".dist-info/" in item[0], item[0]))


def repack(name: str, dest: Path) -> Path:
    dist = metadata.distribution(name)
    wheel_meta = Parser().parsestr(dist.read_text("WHEEL") or "")
    if wheel_meta.get("Root-Is-Purelib", "").strip().lower() != "true":
        raise SystemExit(f"{name}: WHEEL says Root-Is-Purelib is not true; only pure-Python wheels can be repacked")
    tags = wheel_meta.get_all("Tag") or []
    if len(tags) != 1:
        raise SystemExit(f"{name}: WHEEL lists {len(tags)} tags ({tags}); expected exactly one")
    files = wheel_files(dist)
    dist_info = {n.split("/", 1)[0] for n, _ in files if ".dist-info/" in n}
    if len(dist_info) != 1:
        raise SystemExit(f"{name}: expected one .dist-info folder in RECORD, found {sorted(dist_info)}")
    stem = f"{dist.metadata['Name'].replace('-', '_')}-{dist.version}"
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / f"{stem}-{tags[0].strip()}.whl"
    rows = []
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as wheel:
        for arcname, path in files:
            data = path.read_bytes()
            wheel.writestr(arcname, data)
            rows.append(f"{arcname},{record_hash(data)},{len(data)}")
        record = f"{dist_info.pop()}/RECORD"
        wheel.writestr(record, "\n".join([*rows, f"{record},,"]) + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="+", help="installed distribution names (e.g. gguf)")
    parser.add_argument("--dest", type=Path, default=Path(".whl"), help="folder for the wheels (default .whl)")
    args = parser.parse_args(argv)
    for name in args.names:
        print(repack(name, args.dest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
