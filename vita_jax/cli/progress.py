"""A progress line for long silent steps (compiling): elapsed seconds, live on a terminal."""

import contextlib
import sys
import threading
import time


@contextlib.contextmanager
def progress_line(message, stream=None, interval_s=0.5):
    """Show `message` while the block runs: `message... 12 s` updated in place on a terminal,
    one line at the start and one with the time taken at the end otherwise."""
    stream = stream or sys.stderr
    start = time.perf_counter()
    live = hasattr(stream, "isatty") and stream.isatty()
    done = threading.Event()

    def refresh():
        while not done.wait(interval_s):
            stream.write(f"\r{message}... {time.perf_counter() - start:.0f} s")
            stream.flush()

    if live:
        thread = threading.Thread(target=refresh, daemon=True)
        thread.start()
    else:
        stream.write(f"{message}...\n")
        stream.flush()
    try:
        yield
    finally:
        done.set()
        if live:
            thread.join()
        stream.write(("\r" if live else "") + f"{message}: {time.perf_counter() - start:.1f} s\n")
        stream.flush()
