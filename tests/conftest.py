"""Test-wide setup: 8 fake CPU devices for sharding tests (set before JAX is imported).

The fake devices' collectives abort the process when a participant is late by more than the
termination timeout (40 s by default); on a loaded 2-core machine a sharded train step can be,
so the timeout is raised."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8 "
                                   "--xla_cpu_collective_call_terminate_timeout_seconds=900")
os.environ.setdefault("JAX_PLATFORMS", "cpu")


def pytest_collection_modifyitems(items):
    """Tag every test of a module that imports torch with the `torch` marker (`-m "not torch"`
    runs without the parity references; the default run and CI run everything)."""
    import pytest

    for item in items:
        module = getattr(item, "module", None)
        if module is not None and "torch" in vars(module):
            item.add_marker(pytest.mark.torch)
