"""Write-then-rename helpers: an output is either complete or absent, and nothing the caller did
not ask to replace is ever replaced.

    with atomic_directory(out, replaceable=is_my_kind) as tmp:   # write the files into tmp
        ...
    with atomic_file(path, replaceable=looks_like_wav) as f:
        ...
    with allow_replacing():        # the commands' --force: replace any existing output
        model.save(out)

An existing non-empty output is replaced only when `replaceable(path)` says it is a previous
output of the same kind, or inside `allow_replacing()`; otherwise OutputExistsError. Replacing
renames the new copy into place and removes the old copy last. Temporary names carry the host
and process id, so the next write to the same output removes what an interrupted (killed) write
left behind, or reports it when it cannot tell that writer is gone. Outputs get the
permissions of the umask (not the 0700 / 0600 of mkdtemp / mkstemp).
"""

import contextlib
import contextvars
import logging
import os
import shutil
import socket
import tempfile

_REPLACING_ALLOWED = contextvars.ContextVar("vita_jax_replacing_allowed", default=False)
_HOST = socket.gethostname().replace("-", "_")


class OutputExistsError(FileExistsError):
    """An existing output that is not a previous output of the same kind (--force replaces it)."""


class OutputOverlapsInputError(ValueError):
    """The output path is an input or contains one: writing it would destroy the input."""


@contextlib.contextmanager
def allow_replacing(allowed=True):
    """Within this block, existing outputs of any kind may be replaced (a command's --force)."""
    token = _REPLACING_ALLOWED.set(allowed)
    try:
        yield
    finally:
        _REPLACING_ALLOWED.reset(token)


def check_not_an_input(out_path, inputs, flag="--out"):
    """Refuse an output that is one of `inputs` or a directory holding one of them (even with --force)."""
    out = os.path.realpath(out_path)
    for path in inputs:
        if path is None:
            continue
        source = os.path.realpath(path)
        if source == out or source.startswith(out.rstrip(os.sep) + os.sep):
            raise OutputOverlapsInputError(
                f"{flag} {out_path} would replace the input {path}: choose an output outside the input")


def _umask():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _temporary_prefix(path, role):
    return f".{os.path.basename(path)}.{role}-"


def _owner(name, prefix):
    """(host, pid) encoded in a temporary name written by this module, or None."""
    parts = name[len(prefix):].rsplit("-", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1])


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_interrupted_writes(path):
    """Remove the temporary copies an interrupted write of `path` left beside it (restoring the
    previous output when a replace was cut between its two renames). Leftovers whose writer may
    still run (another host, a live process, an older name format) are reported, not touched.
    Returns the names removed."""
    parent = os.path.dirname(os.path.abspath(path)) or "."
    try:
        names = sorted(os.listdir(parent))
    except OSError:
        return []
    removed = []
    for role in ("old", "tmp"):
        prefix = _temporary_prefix(path, role)
        for name in names:
            if not name.startswith(prefix):
                continue
            full = os.path.join(parent, name)
            owner = _owner(name, prefix)
            if owner is None or owner[0] != _HOST or (owner[1] != os.getpid() and _process_alive(owner[1])):
                logging.warning("%s looks like the leftover of an interrupted write of %s; it may still be in use "
                                "by another process, so it was kept: remove it if no write is running", full, path)
                continue
            if role == "old" and not os.path.lexists(path):
                os.rename(full, path)
                logging.warning("restored %s from %s (a replace was interrupted)", path, full)
            else:
                _remove(full)
                logging.warning("removed %s, left by an interrupted write of %s", full, path)
            removed.append(name)
    return removed


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.remove(path)


def _is_empty(path):
    if os.path.isdir(path):
        return not os.listdir(path)
    return os.path.getsize(path) == 0


def check_replaceable(path, is_dir, replaceable=None):
    """Raise OutputExistsError unless writing `path` may replace what is there (see the module doc);
    lets a long job check its outputs before it starts."""
    if not os.path.lexists(path):
        return
    if is_dir and not os.path.isdir(path):
        raise OutputExistsError(f"{path} exists and is not a directory; choose another output path")
    if not is_dir and os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a directory; give a file path as the output")
    if _is_empty(path) or _REPLACING_ALLOWED.get() or (replaceable is not None and replaceable(path)):
        return
    what = "directory" if is_dir else "file"
    raise OutputExistsError(f"{path} already exists and is not a previous output of this kind; "
                            f"pass --force to replace it (only that {what} is replaced) or choose another output")


def _unique_sibling(path, role):
    parent = os.path.dirname(path)
    prefix = f"{_temporary_prefix(path, role)}{_HOST}-{os.getpid()}-"
    return tempfile.mktemp(prefix=prefix, dir=parent)  # the name only: os.rename below claims it


def _commit(tmp, path):
    """Move `tmp` into place; an existing `path` is renamed aside first and removed last."""
    if os.path.lexists(path):
        old = _unique_sibling(path, "old")
        os.rename(path, old)
        os.rename(tmp, path)
        _remove(old)
    else:
        os.rename(tmp, path)


@contextlib.contextmanager
def _naming_the_output(path):
    """An OSError creating the temporary copy names the output, not the temporary name."""
    try:
        yield
    except OSError as err:
        raise type(err)(err.errno, f"{err.strerror}: cannot write {os.path.basename(path)} there",
                        os.path.dirname(path)) from err


@contextlib.contextmanager
def atomic_directory(out_dir, replaceable=None):
    """Yield a temporary sibling directory; on success it replaces `out_dir`.

    On any exception the temporary directory is removed and `out_dir` is untouched. An existing
    non-empty `out_dir` must satisfy `replaceable(out_dir)` (or `allow_replacing()` be active).
    """
    out_dir = os.path.abspath(out_dir)
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    clean_interrupted_writes(out_dir)
    check_replaceable(out_dir, True, replaceable)
    with _naming_the_output(out_dir):
        tmp = tempfile.mkdtemp(prefix=f"{_temporary_prefix(out_dir, 'tmp')}{_HOST}-{os.getpid()}-", dir=parent)
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        _commit(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_file(path, mode="wb", replaceable=None):
    """Yield a file object on a temporary sibling name; renamed to `path` on success.

    An existing non-empty `path` must satisfy `replaceable(path)` (or `allow_replacing()` be active)."""
    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    clean_interrupted_writes(path)
    check_replaceable(path, False, replaceable)
    with _naming_the_output(path):
        fd, tmp = tempfile.mkstemp(prefix=f"{_temporary_prefix(path, 'tmp')}{_HOST}-{os.getpid()}-",
                                   dir=os.path.dirname(path))
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        with os.fdopen(fd, mode) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
