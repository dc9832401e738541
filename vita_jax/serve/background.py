"""Run the app with uvicorn in a background thread on a free localhost port (tests, benchmarks,
notebooks): `with serving(app) as base_url: ...`."""

import contextlib
import socket
import threading
import time

WS_MAX_BYTES = 64 * 2**20


def free_port(host="127.0.0.1"):
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serving(app, host="127.0.0.1", port=None, timeout_s=30.0):
    """Yields "http://host:port" once uvicorn accepts connections; stops it (and its thread) after."""
    import uvicorn

    port = port or free_port(host)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", ws_max_size=WS_MAX_BYTES))
    thread = threading.Thread(target=server.run, name="vita-jax-serve-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"uvicorn did not start on {host}:{port}")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout_s)
