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


def test_serve_passes_every_option_to_the_app_and_uvicorn(monkeypatch):
    """`serve`'s options reach what runs: ServeSettings of the app, each model's loader and adapter, uvicorn's
    host and port (uvicorn.run and create_app are stood in for: nothing binds a port or loads a model)."""
    import uvicorn

    import mlx_cross_encoder.serve as serve
    from mlx_cross_encoder.cli import main

    seen = {}
    monkeypatch.setattr(serve, "create_app", lambda loaders, settings, adapters: ("app", loaders, settings, adapters))
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(app=app, **kw))
    argv = ["serve", "--model", "a=/x", "--model", "/y", "--adapter", "/ad", "--host", "0.0.0.0", "--port", "9123"]
    argv += ["--max-documents", "7", "--max-request-bytes", "4096", "--max-queue", "3", "--max-batch-pairs", "11"]
    argv += ["--batch-size", "5", "--timeout", "2.5", "--api-key-env", "MY_KEY", "--reload-period", "0"]
    argv += ["--no-auto-truncate", "--max-length", "64", "--dtype", "bfloat16"]
    assert main(argv) == 0
    assert (seen["host"], seen["port"]) == ("0.0.0.0", 9123)
    _, loaders, settings, adapters = seen["app"]
    assert list(loaders) == ["a", "/y"] and adapters == {"a": "/ad", "/y": None}
    got = settings.model_dump()
    want = {"max_documents": 7, "max_request_bytes": 4096, "max_queue": 3, "max_batch_pairs": 11, "batch_size": 5}
    want |= {"request_timeout_s": 2.5, "api_key_env": "MY_KEY", "auto_truncate": False, "reload_period_s": 0.0}
    assert {k: got[k] for k in want} == want
    import mlx_cross_encoder.serve.models as models

    monkeypatch.setattr(models, "load_model", lambda path, **kw: (path, kw))
    assert loaders["a"]() == ("/x", {"adapter_path": "/ad", "max_length": 64, "dtype": "bfloat16"})
    assert loaders["/y"]() == ("/y", {"adapter_path": None, "max_length": 64, "dtype": "bfloat16"})
