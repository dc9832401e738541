"""The progress line shown while a command compiles: live seconds on a terminal, a start and an
end line otherwise (issue 9: a 14-60 s compile printed nothing)."""

import io
import time

from vita_jax.cli.progress import progress_line


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_live_on_a_terminal():
    stream = FakeTerminal()
    with progress_line("compiling", stream=stream, interval_s=0.01):
        time.sleep(0.1)
    text = stream.getvalue()
    assert text.count("\rcompiling... ") >= 2 and text.endswith(" s\n") and "\rcompiling: " in text


def test_two_lines_in_a_log():
    stream = io.StringIO()
    with progress_line("compiling", stream=stream):
        pass
    lines = stream.getvalue().splitlines()
    assert lines[0] == "compiling..." and lines[1].startswith("compiling: ") and len(lines) == 2
