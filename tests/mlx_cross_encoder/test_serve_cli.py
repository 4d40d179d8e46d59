"""The ``mlx-cross-encoder serve`` command line, and that the server modules import neither torch nor MLX."""

from __future__ import annotations

import json
import subprocess
import sys

from mlx_cross_encoder.cli import build_parser, parse_model


def test_model_specs_and_defaults():
    assert parse_model("minilm=/models/a") == ("minilm", "/models/a")
    assert parse_model("org/model") == ("org/model", "org/model")
    args = build_parser().parse_args(["serve", "--model", "a=/x", "--model", "/y", "--adapter", "/ad"])
    assert args.model == ["a=/x", "/y"] and args.adapter == ["/ad"]
    assert (args.host, args.port) == ("127.0.0.1", 8000)
    assert (args.dtype, args.reload_period, args.auto_truncate) == (None, None, True)
    more = build_parser().parse_args(["serve", "--model", "/x", "--reload-period", "5", "--no-auto-truncate"])
    assert (more.reload_period, more.auto_truncate) == (5.0, False)


def test_server_modules_import_no_torch_and_no_mlx():
    code = (
        "import sys, json, mlx_cross_encoder.cli, mlx_cross_encoder.serve.app, mlx_cross_encoder.serve.testing;"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'torch' or m == 'mlx.core')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []
