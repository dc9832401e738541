"""Multi-process start-up: `jax.distributed.initialize` from the `distributed` config section.

Fields: enabled, coordinator_address ("host:port"; "" lets JAX detect it on TPU pods / SLURM),
num_processes, process_id (0 / -1: detected), cpu_collectives ("gloo" for CPU multi-process).
"""

import jax


def initialize(cfg):
    if not cfg.enabled:
        return
    if cfg.cpu_collectives:
        jax.config.update("jax_cpu_collectives_implementation", cfg.cpu_collectives)
    jax.distributed.initialize(
        coordinator_address=cfg.coordinator_address or None,
        num_processes=cfg.num_processes or None,
        process_id=cfg.process_id if cfg.process_id >= 0 else None,
    )
