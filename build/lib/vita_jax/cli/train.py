"""Train one stage of the VITA-Audio curriculum.

    vita-jax-train --config configs/stage1_alignment.py --config.data.files=data/*.jsonl \
        --config.data.tokenizer=/path/Qwen2.5-7B-Instruct --config.init.checkpoint=/path/Qwen2.5-7B-Instruct
    python train.py --config configs/stage4_sft.py:tiny          # tiny model on the bundled sample data

Rerunning the same command resumes from the newest checkpoint in --config.train.workdir.
Exit status 1 with a message on a non-finite loss (the last good checkpoint is kept).
"""

import logging
import sys

from absl import app
from ml_collections import config_flags

from vita_jax.configs import STAGES, resolve_config_arg

_CONFIG = config_flags.DEFINE_config_file("config", None, f"stage config: a file (configs/stage*.py[:tiny]) or a stage name ({', '.join(STAGES)})[:tiny]",
                                          lock_config=True)


def _train(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    cfg = _CONFIG.value
    if cfg is None:
        raise app.UsageError("--config is required, e.g. --config configs/stage1_alignment.py:tiny")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("absl").setLevel(logging.WARNING)  # orbax's per-save INFO lines
    from vita_jax.train import distributed
    from vita_jax.train.loop import TrainingDiverged, train

    distributed.initialize(cfg.distributed)
    try:
        result = train(cfg)
    except TrainingDiverged as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    print(f"done: step {result.final_step}, last loss {result.losses.get(result.final_step, float('nan')):.4f}, "
          f"skipped samples {result.skipped}" + (f", model in {result.final_dir}" if result.final_dir else ""))


def main():
    """Console script: a stage may be named instead of given by path (`--config stage4_sft:tiny`)."""
    argv = list(sys.argv)
    for i, arg in enumerate(argv):
        if arg.startswith("--config="):
            argv[i] = "--config=" + resolve_config_arg(arg[len("--config="):])
        elif arg == "--config" and i + 1 < len(argv):
            argv[i + 1] = resolve_config_arg(argv[i + 1])
    app.run(_train, argv=argv)


if __name__ == "__main__":
    main()
