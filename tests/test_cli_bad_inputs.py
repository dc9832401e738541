"""Every command line answers bad input with one line and the right exit status (2: usage error,
1: failure), no Python traceback, and changes nothing on disk (issue 9).

Each fault runs its command line in its own process: forked by tests/helpers/cli_fork_runner.py, which
imports the commands once (a fresh `python` spends seconds importing JAX), and runs the command's
`__main__` as `python SCRIPT` / `python -m MODULE` would. A few faults also run as fresh
`python` subprocesses to show the runner answers the same, and --help, --debug and --force run
that way. One snapshot of the fixture tree before and after the whole batch shows that no fault
wrote, deleted or half-wrote anything.
"""

import concurrent.futures
import dataclasses
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_TINY = ["train.py", "--config", "configs/stage1_alignment.py:tiny"]


@dataclasses.dataclass(frozen=True)
class Fault:
    name: str
    argv: tuple  # after `python`; "{w}" is replaced by the fixture directory
    status: int
    message: str  # expected in the one error line


def convert(module, *args):
    return ("-m", f"conversion.{module}", *args)


FAULTS = [
    # infer.py
    Fault("infer: no arguments", ("infer.py",), 2, "give --demo, speech flags (--audio, --text, --task ...), or --checkpoint"),
    Fault("infer: checkpoint without prompt", ("infer.py", "--checkpoint", "{w}/mtp_hf"), 2, "exactly one of"),
    Fault("infer: both prompt and ids", ("infer.py", "--checkpoint", "{w}/mtp_hf", "--prompt", "a", "--input-ids", "1"),
          2, "exactly one of"),
    Fault("infer: non-integer ids", ("infer.py", "--checkpoint", "{w}/mtp_hf", "--input-ids", "1,x"), 2, "--input-ids"),
    Fault("infer: empty ids", ("infer.py", "--checkpoint", "{w}/mtp_hf", "--input-ids", ""), 2, "--input-ids"),
    Fault("infer: non-integer mode list",
          ("infer.py", "--checkpoint", "{w}/mtp_hf", "--input-ids", "1", "--mode", "1,x"), 2, "--mode '1,x'"),
    Fault("infer: unknown mode", ("infer.py", "--checkpoint", "{w}/mtp_hf", "--input-ids", "1", "--mode", "warp"),
          2, "--mode 'warp'"),
    Fault("infer: non-integer max tokens", ("infer.py", "--demo", "--max-new-tokens", "abc"), 2, "--max-new-tokens"),
    Fault("infer: zero max tokens", ("infer.py", "--demo", "--max-new-tokens", "0"), 2, "must be >= 1"),
    Fault("infer: non-float temperature", ("infer.py", "--demo", "--temperature", "hot"), 2, "--temperature"),
    Fault("infer: unknown flag", ("infer.py", "--demo", "--frobnicate"), 2, "unrecognized arguments: --frobnicate"),
    Fault("infer: missing checkpoint", ("infer.py", "--checkpoint", "{w}/nowhere", "--input-ids", "1"), 1,
          "{w}/nowhere"),
    Fault("infer: checkpoint is a file", ("infer.py", "--checkpoint", "{w}/a_file.txt", "--input-ids", "1"), 1,
          "{w}/a_file.txt"),
    Fault("infer: empty checkpoint directory", ("infer.py", "--checkpoint", "{w}/empty_dir", "--input-ids", "1"), 1,
          "no config.json in {w}/empty_dir"),
    Fault("infer: malformed config.json", ("infer.py", "--checkpoint", "{w}/bad_config_hf", "--input-ids", "1"), 1,
          "cannot parse {w}/bad_config_hf/config.json"),
    Fault("infer: malformed metadata.json", ("infer.py", "--checkpoint", "{w}/bad_meta_ckpt", "--input-ids", "1"), 1,
          "cannot parse {w}/bad_meta_ckpt/metadata.json"),
    Fault("infer: config.json without read permission", ("infer.py", "--checkpoint", "{w}/unreadable_hf",
                                                         "--input-ids", "1"), 1,
          "cannot parse {w}/unreadable_hf/config.json: [Errno 13] Permission denied"),
    Fault("infer: invalid UTF-8 prompt", ("infer.py", "--checkpoint", "{w}/mtp_hf", "--prompt", b"caf\xe9"), 2,
          "--prompt is not valid UTF-8"),
    Fault("infer: prompt without tokenizer", ("infer.py", "--checkpoint", "{w}/mtp_hf", "--prompt", "Hello"), 1,
          "needs a tokenizer"),
    Fault("infer: turbo without MCTP modules", ("infer.py", "--checkpoint", "{w}/plain_hf", "--input-ids", "1,2"), 1,
          "use mode 'vanilla'"),
    Fault("infer: ids outside the vocabulary", ("infer.py", "--checkpoint", "{w}/mtp_hf", "--input-ids", "1,99999"), 1,
          "outside the vocabulary"),
    # train.py
    Fault("train: no config", ("train.py",), 2, "--config is required"),
    Fault("train: missing config file", ("train.py", "--config", "{w}/nope.py"), 2, "no such config file"),
    Fault("train: unknown config variant", ("train.py", "--config", "configs/stage1_alignment.py:huge"), 2,
          "unknown config variant 'huge'"),
    Fault("train: non-integer override", (*TRAIN_TINY, "--config.train.steps=abc"), 2, "--config.train.steps=abc"),
    Fault("train: unknown config field", (*TRAIN_TINY, "--config.nope=1"), 2, "no field 'nope'"),
    Fault("train: stray argument", (*TRAIN_TINY, "extra"), 2, "unexpected arguments: extra"),
    Fault("train: unknown attention", (*TRAIN_TINY, "--config.model.attention=flash"), 1,
          "unknown attention 'flash'; choose one of auto, xla, chunked, cudnn, splash"),
    Fault("train: unknown remat policy", (*TRAIN_TINY, "--config.model.remat_policy=some"), 1,
          "unknown remat_policy 'some'; choose one of none, full, minimal"),
    Fault("train: loss chunk not dividing the length", (*TRAIN_TINY, "--config.train.loss_chunk=100"), 1,
          "train.loss_chunk=100 does not divide the sequence length 192"),
    Fault("train: missing data file", (*TRAIN_TINY, "--config.data.files={w}/missing.jsonl"), 1,
          "data file not found: {w}/missing.jsonl"),
    Fault("train: data path is a directory", (*TRAIN_TINY, "--config.data.files={w}/empty_dir"), 1, "{w}/empty_dir"),
    Fault("train: missing init checkpoint", (*TRAIN_TINY, "--config.init.checkpoint={w}/nowhere",
                                             "--config.train.workdir={w}/unused_run"), 1, "{w}/nowhere"),
    Fault("train: export over an unrelated directory", (*TRAIN_TINY, "--config.export.hf_dir={w}/unrelated"), 2,
          "pass --force"),
    Fault("train: every data line malformed", (*TRAIN_TINY, "--config.data.files={w}/bad_lines.jsonl",
                                               "--config.train.workdir={w}/runs/bad_lines"), 1,
          "no usable sample: all 2 records of a pass over the data were skipped, e.g. bad_lines.jsonl:"),
    Fault("train: workdir is a file", (*TRAIN_TINY, "--config.train.workdir={w}/a_file.txt"), 1, "{w}/a_file.txt"),
    # converters
    Fault("convert: no arguments", convert("to_jax"), 2, "required: --hf-dir, --out"),
    Fault("convert: unknown subcommand", ("-m", "vita_jax.cli.convert", "llm-to-onnx"), 2, "invalid choice"),
    Fault("convert: --out is the source's parent",
          convert("to_jax", "--hf-dir", "{w}/parent/src", "--out", "{w}/parent"), 2,
          "would replace the input {w}/parent/src"),
    Fault("convert: --out is the source", ("-m", "vita_jax.cli.convert", "llm-to-hf", "--ckpt", "{w}/mtp_hf",
                                           "--out", "{w}/mtp_hf"), 2, "would replace the input"),
    Fault("convert: --out holds unrelated files", convert("to_jax", "--hf-dir", "{w}/mtp_hf", "--out", "{w}/unrelated"),
          2, "pass --force"),
    Fault("convert: --out is a file", convert("to_hf", "--ckpt", "{w}/mtp_hf", "--out", "{w}/a_file.txt"), 2,
          "is not a directory"),
    Fault("convert: --out in an unwritable directory", convert("to_jax", "--hf-dir", "{w}/mtp_hf",
                                                               "--out", "/sys/vita_jax_test_out"), 1,
          "/sys: Operation not permitted: cannot write vita_jax_test_out there"),
    Fault("convert: missing source", convert("to_jax", "--hf-dir", "{w}/nowhere", "--out", "{w}/out"), 1,
          "{w}/nowhere"),
    Fault("convert: malformed config.json", convert("to_jax", "--hf-dir", "{w}/bad_config_hf", "--out", "{w}/out"), 1,
          "cannot parse {w}/bad_config_hf/config.json"),
    Fault("convert: no weights", convert("to_jax", "--hf-dir", "{w}/no_weights_hf", "--out", "{w}/out"), 1,
          "checkpoint file missing: {w}/no_weights_hf/model.safetensors"),
    Fault("convert: truncated weights", convert("to_jax", "--hf-dir", "{w}/truncated_hf", "--out", "{w}/out"), 1,
          "{w}/truncated_hf/model.safetensors"),
    Fault("convert: bad dtype", convert("to_jax", "--hf-dir", "{w}/mtp_hf", "--out", "{w}/out", "--param-dtype", "int8"),
          2, "invalid choice: 'int8'"),
    Fault("convert: bad shard size", convert("to_hf", "--ckpt", "{w}/mtp_ckpt", "--out", "{w}/out",
                                             "--max-shard-size", "5XB"), 2, "not a size: '5XB'"),
    Fault("convert: malformed metadata.json", convert("to_hf", "--ckpt", "{w}/bad_meta_ckpt", "--out", "{w}/out"), 1,
          "cannot parse {w}/bad_meta_ckpt/metadata.json"),
    Fault("convert: missing tokenizer directory", convert("tokenizer_to_jax", "--tokenizer-dir", "{w}/nowhere",
                                                          "--out", "{w}/out"), 1, "{w}/nowhere"),
    Fault("convert: tokenizer checkpoint of another kind", convert("tokenizer_to_hf", "--ckpt", "{w}/mtp_ckpt",
                                                                   "--out", "{w}/out"), 1, "expected 'glm4voice"),
    Fault("convert: missing decoder directory", convert("decoder_to_jax", "--decoder-dir", "{w}/nowhere",
                                                        "--out", "{w}/out"), 1, "{w}/nowhere"),
    Fault("convert: malformed decoder config.yaml", convert("decoder_to_pt", "--ckpt", "{w}/bad_decoder",
                                                            "--out", "{w}/out"), 1, "{w}/bad_decoder"),
    # speech commands
    Fault("encode: no files", ("-m", "vita_jax.audio.encode", "--tokenizer-dir", "{w}/tokenizer"), 2,
          "required: FILE"),
    Fault("encode: missing tokenizer", ("-m", "vita_jax.audio.encode", "--tokenizer-dir", "{w}/nowhere",
                                        "{w}/speech.wav"), 1, "{w}/nowhere"),
    Fault("encode: not an audio file", ("-m", "vita_jax.audio.encode", "--tokenizer-dir", "{w}/tokenizer",
                                        "{w}/a_file.txt"), 1, "cannot read audio file {w}/a_file.txt"),
    Fault("encode: empty audio file", ("-m", "vita_jax.audio.encode", "--tokenizer-dir", "{w}/tokenizer",
                                       "{w}/empty.wav"), 1, "{w}/empty.wav"),
    Fault("encode: directory given as a file", ("-m", "vita_jax.audio.encode", "--tokenizer-dir", "{w}/tokenizer",
                                                "{w}/empty_dir"), 1, "{w}/empty_dir"),
    Fault("encode: --output over an unrelated file", ("-m", "vita_jax.audio.encode", "--tokenizer-dir",
                                                      "{w}/tokenizer", "--output", "{w}/a_file.txt", "{w}/speech.wav"),
          2, "pass --force"),
    Fault("encode: --output in an unwritable directory", ("-m", "vita_jax.audio.encode", "--tokenizer-dir",
                                                          "{w}/tokenizer", "--output", "/sys/vita_jax_codes.txt",
                                                          "{w}/speech.wav"), 1, "/sys: Permission denied"),
    Fault("decode: non-integer codes", ("-m", "vita_jax.audio.decode", "--decoder-dir", "{w}/decoder", "--codes", "1,x",
                                        "--out", "{w}/o.wav"), 2, "--codes: audio codes must be integers"),
    Fault("decode: empty codes", ("-m", "vita_jax.audio.decode", "--decoder-dir", "{w}/decoder", "--codes", "",
                                  "--out", "{w}/o.wav"), 2, "--codes: no audio codes"),
    Fault("decode: code out of range", ("-m", "vita_jax.audio.decode", "--decoder-dir", "{w}/decoder",
                                        "--codes", "1,20000", "--out", "{w}/o.wav"), 2,
          "--codes: code 20000 at position 1"),
    Fault("decode: missing codes file", ("-m", "vita_jax.audio.decode", "--decoder-dir", "{w}/decoder",
                                         "--codes-file", "{w}/nowhere.txt", "--out", "{w}/o.wav"), 1,
          "{w}/nowhere.txt: No such file or directory"),
    Fault("decode: codes file is a directory", ("-m", "vita_jax.audio.decode", "--decoder-dir", "{w}/decoder",
                                                "--codes-file", "{w}/empty_dir", "--out", "{w}/o.wav"), 1,
          "{w}/empty_dir: Is a directory"),
    Fault("decode: binary codes file", ("-m", "vita_jax.audio.decode", "--decoder-dir", "{w}/decoder",
                                        "--codes-file", "{w}/garbage.bin", "--out", "{w}/o.wav"), 1,
          "{w}/garbage.bin: not a text file"),
    Fault("decode: empty codes file", ("-m", "vita_jax.audio.decode", "--decoder-dir", "{w}/decoder",
                                       "--codes-file", "{w}/empty.wav", "--out", "{w}/o.wav"), 2, "no audio codes"),
    Fault("decode: codes file without read permission", ("-m", "vita_jax.audio.decode", "--decoder-dir", "{w}/decoder",
                                                         "--codes-file", "{w}/unreadable.txt", "--out", "{w}/o.wav"),
          1, "{w}/unreadable.txt: Permission denied"),
    Fault("decode: missing decoder", ("-m", "vita_jax.audio.decode", "--decoder-dir", "{w}/nowhere", "--codes", "1,2",
                                      "--out", "{w}/o.wav"), 1, "{w}/nowhere"),
    Fault("decode: --out over a non-wav file", ("-m", "vita_jax.audio.decode", "--decoder-dir", "{w}/decoder",
                                                "--codes", "1,2", "--out", "{w}/a_file.txt"), 2, "pass --force"),
    Fault("decode: both codes sources", ("-m", "vita_jax.audio.decode", "--decoder-dir", "{w}/decoder", "--codes", "1",
                                         "--codes-file", "{w}/codes.txt", "--out", "{w}/o.wav"), 2, "not allowed with"),
    Fault("decode: non-integer context", ("-m", "vita_jax.audio.decode", "--decoder-dir", "{w}/decoder", "--codes", "1",
                                          "--out", "{w}/o.wav", "--stream", "--context", "all"), 2, "--context"),
]


def build_world(w):
    """The fixture tree every fault points into (only read by the faults)."""
    from tests.torch_refs.decoder_checkpoint import write_decoder_dir
    from tests.torch_refs.whisper_vq_ref import random_ref, tiny_hf_config, write_tokenizer_dir
    from vita_jax import VitaAudioModel
    from vita_jax.audio.wav_io import write_wav
    from vita_jax.configs.model import tiny

    model = VitaAudioModel.random(tiny().replace(num_mctp_modules=2), seed=0)
    model.save_pretrained(f"{w}/mtp_hf", dtype="float32")
    model.save(f"{w}/mtp_ckpt")
    VitaAudioModel.random(tiny().replace(num_mctp_modules=0), seed=0).save_pretrained(f"{w}/plain_hf", dtype="float32")
    for name in ("bad_config_hf", "no_weights_hf", "truncated_hf"):
        os.makedirs(f"{w}/{name}")
        shutil.copy(f"{w}/plain_hf/config.json", f"{w}/{name}/config.json")
    with open(f"{w}/plain_hf/model.safetensors", "rb") as f, open(f"{w}/truncated_hf/model.safetensors", "wb") as g:
        g.write(f.read(200))
    with open(f"{w}/bad_config_hf/config.json", "w") as f:
        f.write('{"model_type": "qwen2",')
    shutil.copytree(f"{w}/mtp_ckpt", f"{w}/bad_meta_ckpt")
    with open(f"{w}/bad_meta_ckpt/metadata.json", "w") as f:
        f.write("{")
    shutil.copytree(f"{w}/mtp_hf", f"{w}/parent/src")
    os.makedirs(f"{w}/unrelated")
    os.makedirs(f"{w}/empty_dir")
    os.makedirs(f"{w}/bad_decoder")
    with open(f"{w}/bad_decoder/config.yaml", "w") as f:
        f.write("flow: [unclosed\n")
    for path, text in (("parent/notes.txt", "mine"), ("unrelated/notes.txt", "mine"), ("a_file.txt", "plain text\n"),
                       ("codes.txt", "1 2 3\n")):
        with open(f"{w}/{path}", "w") as f:
            f.write(text)
    with open(f"{w}/bad_lines.jsonl", "w") as f:
        f.write('{"messages": [ not json\n["a list"]\n')
    with open(f"{w}/garbage.bin", "wb") as f:
        f.write(bytes(range(128, 256)))
    open(f"{w}/empty.wav", "wb").close()
    shutil.copytree(f"{w}/plain_hf", f"{w}/unreadable_hf")
    shutil.copy(f"{w}/codes.txt", f"{w}/unreadable.txt")
    for path in (f"{w}/unreadable_hf/config.json", f"{w}/unreadable.txt"):
        os.chmod(path, 0)
    rng = np.random.default_rng(0)
    write_wav(f"{w}/speech.wav", 0.1 * rng.standard_normal(16000).astype(np.float32), 16000)
    cfg = tiny_hf_config(layers=2, quantize_position=2)
    write_tokenizer_dir(f"{w}/tokenizer", cfg, random_ref(cfg, rng.standard_normal((1, 128, 800)).astype(np.float32)))
    write_decoder_dir(f"{w}/decoder")


def needs_non_root(fault):
    return "without read permission" in fault.name and os.geteuid() == 0


def snapshot(w, skip=None):
    """{relative path: (size, mtime_ns, mode)} of everything under w (skip: a subtree left out)."""
    state = {}
    for root, dirs, files in os.walk(w):
        for name in dirs + files:
            path = os.path.join(root, name)
            if skip and (path == skip or path.startswith(skip + os.sep)):
                continue
            st = os.lstat(path)
            state[os.path.relpath(path, w)] = (st.st_size if name in files else 0, st.st_mtime_ns, st.st_mode)
    return state


def command_env(extra_env=None):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "", "TQDM_DISABLE": "1"}
    env.pop("VITA_JAX_DEBUG", None)
    return {**env, **(extra_env or {})}


def expand(argv, w):
    """Fill in the fixture directory; bytes become the surrogate escapes Python puts in sys.argv."""
    return [a.replace("{w}", w) if isinstance(a, str) else a.decode("utf-8", "surrogateescape") for a in argv]


def run_command(argv, w, extra_env=None):
    """A fresh `python ARGV` subprocess."""
    args = [sys.executable] + [a.encode("utf-8", "surrogateescape") for a in expand(argv, w)]
    return subprocess.run(args, cwd=ROOT, env=command_env(extra_env), capture_output=True, timeout=300)


def run_forked(faults, w, logs):
    """(status, stdout, stderr) of each fault, run by tests/helpers/cli_fork_runner.py."""
    jobs = [{"argv": expand(f.argv, w), "stdout": os.path.join(logs, f"{i}.out"),
             "stderr": os.path.join(logs, f"{i}.err")} for i, f in enumerate(faults)]
    proc = subprocess.run([sys.executable, "-m", "tests.helpers.cli_fork_runner"], input=json.dumps(jobs).encode(), cwd=ROOT,
                          env=command_env(), capture_output=True, timeout=900)
    assert proc.returncode == 0, proc.stderr.decode()
    statuses = json.loads(proc.stdout)
    return [subprocess.CompletedProcess(job["argv"], status, open(job["stdout"], "rb").read(),
                                        open(job["stderr"], "rb").read()) for job, status in zip(jobs, statuses)]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    w = str(tmp_path_factory.mktemp("world"))
    logs = str(tmp_path_factory.mktemp("logs"))
    build_world(w)
    before = snapshot(w, skip=f"{w}/runs")  # the training runs' workdirs: their output
    runnable = [f for f in FAULTS if not needs_non_root(f)]
    done = dict(zip(runnable, run_forked(runnable, w, logs)))
    if os.environ.get("SHOW_CLI_ERRORS"):
        for fault, proc in done.items():
            print(f"{proc.returncode} {fault.name}: {proc.stderr.decode(errors='replace').strip().splitlines()[-1:]}")
    return w, done, before, snapshot(w, skip=f"{w}/runs")


def test_at_least_40_distinct_faults():
    assert len({fault.name for fault in FAULTS}) == len(FAULTS)
    assert len([f for f in FAULTS if "without read permission" not in f.name]) >= 40  # they run as root too


@pytest.mark.slow
@pytest.mark.parametrize("fault", FAULTS, ids=[fault.name for fault in FAULTS])
def test_fault_gets_one_line_and_its_exit_status(results, fault):
    w, done, _, _ = results
    if needs_non_root(fault):
        pytest.skip("root reads files whatever their permissions")
    proc = done[fault]
    out, err = proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
    assert "Traceback" not in out + err, err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, err
    assert fault.message.replace("{w}", w) in errors[0], err
    assert proc.returncode == fault.status, err


@pytest.mark.slow
def test_no_fault_changed_anything(results):
    _, _, before, after = results
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert not changed


@pytest.mark.slow
def test_fresh_subprocesses_answer_as_the_runner(results):
    w, done, _, _ = results
    picked = [f for f in FAULTS if f.name in ("infer: invalid UTF-8 prompt", "train: unknown config field",
                                              "convert: --out is the source's parent", "decode: code out of range")]
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        fresh = list(pool.map(lambda fault: run_command(fault.argv, w), picked))
    for fault, proc in zip(picked, fresh):
        assert proc.returncode == done[fault].returncode == fault.status, proc.stderr.decode()
        assert proc.stderr.splitlines()[-1] == done[fault].stderr.splitlines()[-1]


@pytest.mark.slow
def test_debug_shows_the_traceback(results):
    w = results[0]
    for extra, env in ((["--debug"], None), ([], {"VITA_JAX_DEBUG": "1"})):
        proc = run_command(("infer.py", "--checkpoint", "{w}/bad_config_hf", "--input-ids", "1", *extra), w, env)
        err = proc.stderr.decode()
        assert proc.returncode == 1 and "Traceback" in err and err.strip().splitlines()[-1].startswith("error: ")


@pytest.mark.slow
def test_help_exits_0_everywhere(results):
    w = results[0]
    commands = [("infer.py",), ("train.py",), convert("to_jax"), convert("decoder_to_pt"),
                ("-m", "vita_jax.cli.convert"), ("-m", "vita_jax.audio.encode"), ("-m", "vita_jax.audio.decode")]
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        procs = list(pool.map(lambda argv: run_command((*argv, "--help"), w), commands))
    for argv, proc in zip(commands, procs):
        assert proc.returncode == 0 and b"--" in proc.stdout and not proc.stderr.strip(), (argv, proc.stderr.decode())


@pytest.mark.slow
def test_force_replaces_only_the_output(results):
    w = results[0]
    out = os.path.join(w, "forced")
    shutil.copytree(os.path.join(w, "unrelated"), out)
    before = snapshot(w, skip=out)
    proc = run_command(convert("to_jax", "--hf-dir", "{w}/mtp_hf", "--out", "{w}/forced", "--force"), w)
    assert proc.returncode == 0, proc.stderr.decode()
    assert {"metadata.json", "params"} <= set(os.listdir(out)) and "notes.txt" not in os.listdir(out)
    assert snapshot(w, skip=out) == before  # no temporary or old copy left beside it
    assert os.stat(out).st_mode & 0o777 == 0o777 & ~current_umask()  # not mkdtemp's 0700
    for root, dirs, files in os.walk(out):  # readable by others as the umask allows
        for name in dirs + files:
            assert os.stat(os.path.join(root, name)).st_mode & 0o044 == 0o044 & ~current_umask()


def current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
