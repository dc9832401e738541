"""Write-then-rename helpers: an output directory or file is either complete or absent."""

import contextlib
import os
import shutil
import tempfile


@contextlib.contextmanager
def atomic_directory(out_dir, overwrite=True):
    """Yield a temporary sibling directory; on success it replaces `out_dir`.

    On any exception the temporary directory is removed and `out_dir` is untouched.
    """
    out_dir = os.path.abspath(out_dir)
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    if os.path.exists(out_dir) and not overwrite:
        raise FileExistsError(f"output directory already exists: {out_dir}")
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.tmp-", dir=parent)
    try:
        yield tmp
        if os.path.exists(out_dir):
            old = tmp + ".old"
            os.rename(out_dir, old)
            os.rename(tmp, out_dir)
            shutil.rmtree(old)
        else:
            os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_file(path, mode="wb"):
    """Yield a file object on a temporary sibling name; renamed to `path` on success."""
    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.tmp-", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, mode) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
