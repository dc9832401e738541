"""vita_jax.atomic: an existing output is replaced only when it is a previous output of the same
kind (or with allow_replacing, the commands' --force), the old copy is removed last, leftovers of a
killed write are cleaned by the next write, and outputs get the umask's permissions."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from vita_jax.atomic import (OutputExistsError, OutputOverlapsInputError, allow_replacing, atomic_directory,
                             atomic_file, check_not_an_input)


def write_dir(path, name="a.txt", text="new"):
    with atomic_directory(str(path), replaceable=lambda p: os.path.isfile(os.path.join(p, "a.txt"))) as tmp:
        with open(os.path.join(tmp, name), "w") as f:
            f.write(text)


def test_unrelated_directory_is_refused_unless_forced(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    with pytest.raises(OutputExistsError, match="pass --force"):
        write_dir(out)
    assert os.listdir(out) == ["mine.txt"]
    with allow_replacing():
        write_dir(out)
    assert os.listdir(out) == ["a.txt"] and sorted(os.listdir(tmp_path)) == ["out"]


def test_previous_output_and_empty_directory_are_replaced(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    write_dir(out, text="one")
    write_dir(out, text="two")
    assert (out / "a.txt").read_text() == "two" and sorted(os.listdir(tmp_path)) == ["out"]


def test_output_holding_the_input_is_refused_even_forced(tmp_path):
    (tmp_path / "src").mkdir()
    with pytest.raises(OutputOverlapsInputError, match="would replace the input"):
        check_not_an_input(str(tmp_path), [str(tmp_path / "src")])
    with pytest.raises(OutputOverlapsInputError):
        check_not_an_input(str(tmp_path / "src"), [str(tmp_path / "src")])
    check_not_an_input(str(tmp_path / "srcx"), [str(tmp_path / "src")])  # a sibling with a common prefix is fine


def test_failed_write_leaves_the_old_output(tmp_path):
    out = tmp_path / "out"
    write_dir(out, text="old")
    with pytest.raises(RuntimeError):
        with atomic_directory(str(out), replaceable=lambda p: True):
            raise RuntimeError("boom")
    assert (out / "a.txt").read_text() == "old" and sorted(os.listdir(tmp_path)) == ["out"]


def test_files_are_refused_unless_replaceable(tmp_path):
    path = tmp_path / "codes.txt"
    path.write_text("my notes")
    with pytest.raises(OutputExistsError):
        with atomic_file(str(path), "w") as f:
            f.write("x")
    with atomic_file(str(path), "w", replaceable=lambda p: open(p).read().startswith("my")) as f:
        f.write("x")
    assert path.read_text() == "x"
    with pytest.raises(IsADirectoryError):
        with atomic_file(str(tmp_path), "w"):
            pass


def test_permissions_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_dir(tmp_path / "out")
        with atomic_file(str(tmp_path / "f.bin")) as f:
            f.write(b"x")
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "out").st_mode & 0o777 == 0o755  # mkdtemp alone gives 0700
    assert os.stat(tmp_path / "f.bin").st_mode & 0o777 == 0o644  # mkstemp alone gives 0600


def test_leftovers_of_a_killed_write_are_cleaned_by_the_next(tmp_path):
    out = tmp_path / "out"
    write_dir(out, text="old")
    script = textwrap.dedent(f"""
        import os, time
        from vita_jax import atomic
        with atomic.atomic_directory({str(out)!r}, replaceable=lambda p: True) as tmp:
            open(os.path.join(tmp, "a.txt"), "w").write("half")
            print("writing", flush=True)
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=os.path.dirname(os.path.dirname(__file__)) or ".",
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "writing\n"
    os.kill(proc.pid, signal.SIGKILL)  # as `kill -9` during an export
    proc.wait()
    leftovers = [n for n in os.listdir(tmp_path) if n.startswith(".out.tmp-")]
    assert len(leftovers) == 1
    # a replace cut between its renames: the previous output sits under an .old name, `out` is gone
    os.rename(out, tmp_path / f".out.old-{leftovers[0].split('.tmp-')[1]}")
    assert not out.exists()

    write_dir(out, text="new")  # cleans both: the .old copy is restored first, then replaced
    assert sorted(os.listdir(tmp_path)) == ["out"] and (out / "a.txt").read_text() == "new"


def test_a_running_writers_temporary_is_kept(tmp_path):
    busy = tmp_path / f".out.tmp-otherhost-{os.getpid()}-abc"
    busy.mkdir()
    write_dir(tmp_path / "out")
    assert busy.exists()  # another host's write may still run: reported, not removed
