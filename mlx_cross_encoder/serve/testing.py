"""Start a server in a background thread on a free 127.0.0.1 port (for tests and benchmarks).

with running_server({"tiny": lambda: MLXCrossEncoder(path)}, ServeSettings(max_queue=4)) as base_url:
    cohere.ClientV2(base_url=base_url, api_key="x").rerank(model="tiny", query=..., documents=[...])
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from .app import create_app
from .settings import ServeSettings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_server(
    loaders: dict,
    settings: ServeSettings | None = None,
    startup_timeout_s: float = 30.0,
    adapters: dict[str, str] | None = None,
) -> Iterator[str]:
    """Yield ``http://127.0.0.1:PORT`` of a running server of ``loaders`` (and ``adapters`` to hot-reload; see
    :func:`create_app`); stop it (and join its thread) on exit."""
    port = free_port()
    config = uvicorn.Config(
        create_app(loaders, settings, adapters), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"rerank-server:{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"rerank server on 127.0.0.1:{port} did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
