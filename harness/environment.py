"""Where a figure was measured: chip, OS, Python, library versions, BLAS, git commit, date.

Captured once per ``harness run`` and stored at the top of the results file. Nothing here identifies the
machine beyond its hardware: the hostname is stored only as a short hash (enough to tell two machines apart).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

#: distributions whose versions are recorded (absent ones are recorded as None)
PACKAGES = (
    "reranker-harness",
    "mlx",
    "mlx-lm",
    "mlx-cpu",
    "mlx-metal",
    "mlx-cuda-12",
    "mlx-cuda-13",
    "torch",
    "transformers",
    "sentence-transformers",
    "tokenizers",
    "safetensors",
    "ranx",
    "numpy",
    "pandas",
)

REPO_ROOT = Path(__file__).resolve().parent.parent


def package_versions(names=PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution, None when it is not installed (nothing is imported)."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def _command(args: list[str], timeout: float = 20) -> str | None:
    """stdout of a command, stripped; None when it is missing, fails or times out."""
    if shutil.which(args[0]) is None:
        return None
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _macos_chip() -> dict[str, Any]:
    cpu = _command(["sysctl", "-n", "machdep.cpu.brand_string"])
    memory = _int(_command(["sysctl", "-n", "hw.memsize"]))
    gpu_cores = None
    gpu = None
    profile = _command(["system_profiler", "SPDisplaysDataType", "-json"], timeout=60)
    if profile:
        try:
            displays = json.loads(profile).get("SPDisplaysDataType") or []
        except json.JSONDecodeError:
            displays = []
        for item in displays:
            gpu = gpu or item.get("sppci_model") or item.get("_name")
            gpu_cores = gpu_cores or _int(item.get("sppci_cores"))
    if gpu_cores is None:  # older macOS: the AGX accelerator's registry entry holds it
        ioreg = _command(["ioreg", "-rc", "AGXAccelerator", "-d", "1"])
        for line in (ioreg or "").splitlines():
            if '"gpu-core-count"' in line:
                gpu_cores = _int(line.rsplit("=", 1)[-1].strip())
                break
    name = cpu or platform.processor() or "unknown Apple chip"
    if gpu_cores:
        name = f"{name} ({gpu_cores}-core GPU)"
    return {
        "name": name,
        "cpu": cpu,
        "cpu_cores": os.cpu_count(),
        "gpu": gpu,
        "gpu_cores": gpu_cores,
        "gpu_memory": None,  # unified memory: see memory_bytes
        "memory_bytes": memory,
    }


def _linux_cpu_model() -> str | None:
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "Hardware", "cpu model") and value.strip():
            return value.strip()
    return None


def _nvidia_gpus() -> list[dict[str, Any]]:
    """Name and memory of each NVIDIA GPU: nvidia-smi, else torch.cuda in a subprocess when a driver is loaded."""
    out = _command(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"])
    if out:
        gpus = []
        for line in out.splitlines():
            name, _, memory = line.partition(",")
            gpus.append({"name": name.strip(), "memory": memory.strip() or None})
        return gpus
    if not (Path("/proc/driver/nvidia").exists() or Path("/dev/nvidia0").exists()):
        return []
    # torch is imported only in a child process: the harness's parent never imports it
    probe = (
        "import json, torch\n"
        "n = torch.cuda.device_count() if torch.cuda.is_available() else 0\n"
        "print(json.dumps([{'name': torch.cuda.get_device_name(i), "
        "'memory': f'{torch.cuda.get_device_properties(i).total_memory // 2**20} MiB'} for i in range(n)]))\n"
    )
    text = _command([sys.executable, "-c", probe], timeout=120)
    try:
        return json.loads(text) if text else []
    except json.JSONDecodeError:
        return []


def _linux_chip() -> dict[str, Any]:
    cpu = _linux_cpu_model() or platform.processor() or platform.machine()
    cores = os.cpu_count()
    try:
        import psutil

        memory = psutil.virtual_memory().total
    except Exception:  # psutil missing or unsupported
        memory = None
    gpus = _nvidia_gpus()
    name = f"{cpu} ({cores} cores)"
    if gpus:
        counted = {}
        for g in gpus:
            counted[g["name"]] = counted.get(g["name"], 0) + 1
        name += " + " + ", ".join(f"{n}x {g}" if n > 1 else g for g, n in counted.items())
    return {
        "name": name,
        "cpu": cpu,
        "cpu_cores": cores,
        "gpu": ", ".join(g["name"] for g in gpus) or None,
        "gpu_cores": None,
        "gpu_memory": ", ".join(str(g["memory"]) for g in gpus if g.get("memory")) or None,
        "memory_bytes": memory,
    }


def chip_info() -> dict[str, Any]:
    """``{"name": one line for reports, "cpu", "cpu_cores", "gpu", "gpu_cores", "gpu_memory", "memory_bytes"}``."""
    if sys.platform == "darwin":
        return _macos_chip()
    if sys.platform.startswith("linux"):
        return _linux_chip()
    cpu = platform.processor() or platform.machine()
    return {
        "name": f"{cpu} ({os.cpu_count()} cores)",
        "cpu": cpu,
        "cpu_cores": os.cpu_count(),
        "gpu": None,
        "gpu_cores": None,
        "gpu_memory": None,
        "memory_bytes": None,
    }


def git_state(root: Path = REPO_ROOT) -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` for the checkout the harness runs from."""
    commit = _command(["git", "-C", str(root), "rev-parse", "HEAD"])
    if commit is None:
        return {"commit": None, "dirty": None}
    status = _command(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"])
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def mlx_blas() -> str | None:
    """The BLAS mlx_cross_encoder loaded for MLX's CPU backend in this process: None in the measuring parent, which
    loads no MLX (each MLX run records the one its worker loaded in ``system.blas``), on macOS, or when none."""
    try:
        import mlx_cross_encoder  # noqa: F401 - importing loads it
        from mlx_cross_encoder import _blas
    except Exception:  # mlx missing: record nothing rather than fail the run
        return None
    return _blas.loaded_library


def hostname_hash() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:12]


def capture_environment() -> dict[str, Any]:
    """Everything a stored figure needs to be interpreted and reproduced (see docs/results-schema.md)."""
    return {
        "chip": chip_info(),
        "os": {
            "system": platform.system(),
            "release": platform.release(),
            "version": platform.version(),
            "machine": platform.machine(),
            "platform": platform.platform(),
        },
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "packages": package_versions(),
        "blas": mlx_blas(),
        "git": git_state(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "hostname_hash": hostname_hash(),
    }
