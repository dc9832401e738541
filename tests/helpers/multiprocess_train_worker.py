"""One process of the 2-process training test: python -m tests.helpers.multiprocess_train_worker PORT ID OUT.json CONFIG.json

Sets up 2 fake CPU devices, joins the JAX cluster over 127.0.0.1 (gloo collectives) and trains
the run config given as JSON; writes {step: loss} to OUT.json (process 0)."""

import json
import os
import sys

os.environ["XLA_FLAGS"] = ("--xla_force_host_platform_device_count=2 "
                           "--xla_cpu_collective_call_terminate_timeout_seconds=900")
os.environ["JAX_PLATFORMS"] = "cpu"


def main(port, process_id, out, config_json):
    import ml_collections

    from vita_jax.train import distributed
    from vita_jax.train.loop import train

    with open(config_json) as f:
        cfg = ml_collections.ConfigDict(json.load(f))
    cfg.distributed.update(enabled=True, coordinator_address=f"127.0.0.1:{port}", num_processes=2,
                           process_id=process_id, cpu_collectives="gloo")
    distributed.initialize(cfg.distributed)
    result = train(cfg, progress=False)
    if process_id == 0:
        with open(out, "w") as f:
            json.dump(result.losses, f)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
