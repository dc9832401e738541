"""Train one stage of the VITA-Audio curriculum.

    python train.py --config configs/stage1_alignment.py --config.data.files=data/*.jsonl \
        --config.data.tokenizer=/path/Qwen2.5-7B-Instruct --config.init.checkpoint=/path/Qwen2.5-7B-Instruct
    python train.py --config configs/stage4_sft.py:tiny          # tiny model on the bundled sample data

Rerunning the same command resumes from the newest checkpoint in --config.train.workdir.
Exit status 1 with a message on a non-finite loss (the last good checkpoint is kept).
"""

import logging
import sys

from absl import app
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "stage config file (configs/stage*.py[:tiny])",
                                          lock_config=True)


def main(argv):
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


if __name__ == "__main__":
    app.run(main)
