"""Runs many command lines fast: each in a forked child of this process, which imported the
commands once (the JAX import dominates a fresh `python` start). A child is a separate process
that runs the command's `__main__` as `python SCRIPT ARGS` / `python -m MODULE ARGS` would, with
its own stdout / stderr files and exit status; an exception escaping it prints a traceback and
exits 1, as the interpreter does.

    python -m tests.helpers.cli_fork_runner < jobs.json > statuses.json
    jobs: [{"argv": ["infer.py", "--demo"], "stdout": PATH, "stderr": PATH}, ...] (argv after
    `python`, run from the current directory; non-UTF-8 bytes as surrogate escapes, as in sys.argv)
"""

import json
import os
import runpy
import sys
import traceback

PARALLEL = 3


def _child(job):
    for fd, path in ((1, job["stdout"]), (2, job["stderr"])):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
    argv, status = job["argv"], 0
    try:
        if argv[0] == "-m":
            sys.argv = [argv[1], *argv[2:]]
            runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        else:
            sys.argv = list(argv)
            runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as exit_:
        if isinstance(exit_.code, str):
            print(exit_.code, file=sys.stderr)
            status = 1
        else:
            status = exit_.code or 0
    except BaseException:  # noqa: BLE001 - what the interpreter prints for an uncaught exception
        traceback.print_exc()
        status = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(status)


def main():
    jobs = json.load(sys.stdin)
    import vita_jax.cli.convert, vita_jax.cli.infer, vita_jax.cli.speech_decode  # noqa: E401,F401 - imported once
    import vita_jax.cli.speech_encode, vita_jax.cli.train  # noqa: E401,F401
    import orbax.checkpoint, transformers, librosa, torch  # noqa: E401,F401 - heavy lazy imports of the commands

    statuses, running = [None] * len(jobs), {}
    for i, job in enumerate(jobs):
        while len(running) >= PARALLEL:
            pid, raw = os.wait()
            statuses[running.pop(pid)] = os.waitstatus_to_exitcode(raw)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(job)
        running[pid] = i
    while running:
        pid, raw = os.wait()
        statuses[running.pop(pid)] = os.waitstatus_to_exitcode(raw)
    json.dump(statuses, sys.stdout)


if __name__ == "__main__":
    main()
