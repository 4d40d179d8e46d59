"""``mlx-cross-encoder``: the package's command line (``serve``; ``tribrid`` from :mod:`.tribrid.cli`)."""

from __future__ import annotations

import argparse
import sys

from .serve.settings import ServeSettings


def parse_model(spec: str) -> tuple[str, str]:
    """``NAME=PATH`` -> (NAME, PATH); a bare ``PATH`` (or hub id) is served under that same string."""
    name, sep, path = spec.partition("=")
    return (name, path) if sep and name and path else (spec, spec)


def add_serve_parser(subparsers) -> argparse.ArgumentParser:
    d = ServeSettings()
    p = subparsers.add_parser("serve", help="HTTP rerank server (Cohere v1/v2, Jina, TEI shapes)")
    p.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="[NAME=]PATH",
        help="model folder/hub id/.gguf to serve (repeatable): cross-encoder, LLM reranker or embedding model "
        "(bi-encoder, cosine); requests pick it by NAME; the first is the default",
    )
    p.add_argument(
        "--adapter",
        action="append",
        default=[],
        metavar="DIR",
        help="LoRA adapter folder for the --model at the same position (repeatable)",
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-length", type=int, default=None, help="token limit per pair (default: the model's)")
    p.add_argument(
        "--dtype",
        default=None,
        help="float32 (default), tf32 (float32 with TF32 matmuls; start with MLX_ENABLE_TF32=1), float16 or bfloat16",
    )
    p.add_argument("--max-documents", type=int, default=d.max_documents)
    p.add_argument("--max-request-bytes", type=int, default=d.max_request_bytes)
    p.add_argument("--max-queue", type=int, default=d.max_queue, help="queued requests per model before 429")
    p.add_argument("--max-batch-pairs", type=int, default=d.max_batch_pairs, help="pairs per merged batch")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="rows per forward pass")
    p.add_argument("--timeout", type=float, default=d.request_timeout_s, help="seconds before a request gets 504")
    p.add_argument(
        "--reload-period",
        type=float,
        default=None,
        metavar="SECONDS",
        help="hot reload: check each --adapter for a changed weights file at most this often (0: before every "
        "batch) and swap the rebuilt model in; a half-written adapter never serves (default: off)",
    )
    p.add_argument(
        "--no-auto-truncate",
        dest="auto_truncate",
        action="store_false",
        help="TEI requests without 'truncate' get 413 for inputs over max_length (TEI's default) instead of "
        "being truncated",
    )
    p.add_argument(
        "--api-key-env",
        default=d.api_key_env,
        help="env var holding the Bearer API key; when it is unset or empty, no key is required",
    )
    p.set_defaults(func=serve_main)
    return p


def serve_main(args: argparse.Namespace) -> int:
    import uvicorn

    from .serve import create_app

    if len(args.adapter) > len(args.model):
        raise SystemExit(f"{len(args.adapter)} --adapter for {len(args.model)} --model")
    settings = ServeSettings(
        max_documents=args.max_documents,
        max_request_bytes=args.max_request_bytes,
        max_queue=args.max_queue,
        max_batch_pairs=args.max_batch_pairs,
        batch_size=args.batch_size,
        request_timeout_s=args.timeout,
        api_key_env=args.api_key_env,
        auto_truncate=args.auto_truncate,
        reload_period_s=args.reload_period,
    )
    loaders, adapters = {}, {}
    for i, spec in enumerate(args.model):
        name, path = parse_model(spec)
        adapter = args.adapter[i] if i < len(args.adapter) else None
        loaders[name] = _loader(path, adapter, args.max_length, args.dtype)
        adapters[name] = adapter
    uvicorn.run(create_app(loaders, settings, adapters), host=args.host, port=args.port, log_level="info")
    return 0


def _loader(path: str, adapter: str | None, max_length: int | None, dtype: str | None):
    def load():
        from .serve.models import load_model

        return load_model(path, adapter_path=adapter, max_length=max_length, dtype=dtype)

    return load


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlx-cross-encoder", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    add_serve_parser(sub)
    from .tribrid.cli import add_parser as add_tribrid

    add_tribrid(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
