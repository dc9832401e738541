"""Two JAX processes on this machine (2 fake CPU devices each, gloo collectives over 127.0.0.1),
each feeding only its own data shard, train the tiny model to the single-process losses."""

import json
import socket
import subprocess
import sys

import numpy as np
import pytest

from vita_jax.configs import stage1_alignment
from tests.helpers.train import tiny_run_config, tiny_tokenizer
from vita_jax.train.loop import train


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_match_one_process(tmp_path):
    tiny_tokenizer(tmp_path / "tok")  # built once: both processes load the same directory
    cfg = tiny_run_config(stage1_alignment, tmp_path / "multi", steps=3, tokenizer=str(tmp_path / "tok"),
                          num_shards=2)
    cfg.mesh.update(data=2, fsdp=2, tensor=1, devices=0)
    (tmp_path / "config.json").write_text(cfg.to_json())
    port = free_port()
    procs = [subprocess.Popen([sys.executable, "-m", "tests.helpers.multiprocess_train_worker", str(port), str(i),
                               str(tmp_path / "losses.json"), str(tmp_path / "config.json")],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in (0, 1)]
    logs = [p.communicate(timeout=300)[0] for p in procs]
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-3000:]
    multi = {int(k): v for k, v in json.loads((tmp_path / "losses.json").read_text()).items()}

    cfg.train.workdir = str(tmp_path / "single")
    cfg.mesh.devices = 4  # the same (data=2, fsdp=2) mesh in one process
    single = train(cfg, progress=False).losses
    assert sorted(multi) == [1, 2, 3]
    np.testing.assert_allclose([multi[s] for s in (1, 2, 3)], [single[s] for s in (1, 2, 3)], rtol=1e-5)
