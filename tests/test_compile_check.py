"""The ahead-of-time memory check: a stage compiles on the fake CPU mesh and reports its memory;
bad topology names fail clearly before any compile."""

import importlib.util
import subprocess
import sys

import pytest

from vita_jax.configs.stage4_sft import get_config
from vita_jax.train.compile_check import check_stage, topology_devices


def test_tiny_stage_compiles_on_the_cpu_mesh_and_reports_its_memory():
    cfg = get_config("tiny")
    cfg.mesh.update(data=2, fsdp=4)
    cfg.train.global_batch_size = 8
    report = check_stage(cfg)
    assert report.devices == 8 and report.mesh == (2, 4, 1)
    assert report.argument_bytes > 0 and report.temp_bytes > 0 and report.flops > 0
    assert report.peak_bytes >= report.argument_bytes and report.fits and not report.error


def test_bad_topology_names_fail_before_compiling():
    with pytest.raises(ValueError, match="topology 'v5e-16' is not of the form VERSION:AxB"):
        topology_devices("v5e-16")
    if importlib.util.find_spec("libtpu") is None:
        with pytest.raises(RuntimeError, match="needs libtpu to compile for TPU"):
            topology_devices("v5e:4x4")
    else:
        with pytest.raises(ValueError, match="topology 'v9x:1x1' is unknown to libtpu"):
            topology_devices("v9x:1x1")


def test_compile_only_refuses_a_loss_chunk_that_does_not_divide_the_length():
    result = subprocess.run(
        [sys.executable, "train.py", "--config", "configs/stage4_sft.py:tiny", "--config.compile_only=true",
         "--config.train.loss_chunk=100"], capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "train.loss_chunk=100 does not divide the sequence length 192" in result.stderr
