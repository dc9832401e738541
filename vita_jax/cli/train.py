"""Train one stage of the VITA-Audio curriculum.

    vita-jax-train --config configs/stage1_alignment.py --config.data.files=data/*.jsonl \
        --config.data.tokenizer=/path/Qwen2.5-7B-Instruct --config.init.checkpoint=/path/Qwen2.5-7B-Instruct
    python train.py --config configs/stage4_sft.py:tiny          # tiny model on the bundled sample data

Rerunning the same command resumes from the newest checkpoint in --config.train.workdir.
Before spending pod time: `--config.compile_only=true --config.topology=v5e:4x4` compiles the stage's
step for that TPU slice on this machine (needs libtpu) and says whether it fits (exit 1 if not).
Exit status 1 with a message on a non-finite loss (the last good checkpoint is kept).
"""

import logging
import sys

from absl import app
from ml_collections import config_flags

from vita_jax.configs import STAGES, resolve_config_arg

HELP_FLAGS = ("-h", "-?", "--help", "--helpshort", "--helpfull", "--helpxml")
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
    if cfg.compile_only:
        _compile_only(cfg)
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


def _compile_only(cfg):
    from vita_jax.train.compile_check import check_stage

    report = check_stage(cfg, cfg.topology)
    print(f"{cfg.stage} on {cfg.topology or 'this process'} ({report.devices} x {report.device_kind}, mesh "
          f"data,fsdp,tensor={report.mesh}): {report.summary()}")
    sys.exit(0 if report.fits else 1)


def main():
    """Console script: a stage may be named instead of given by path (`--config stage4_sft:tiny`)."""
    argv = list(sys.argv)
    for i, arg in enumerate(argv):
        if arg.startswith("--config="):
            argv[i] = "--config=" + resolve_config_arg(arg[len("--config="):])
        elif arg == "--config" and i + 1 < len(argv):
            argv[i + 1] = resolve_config_arg(argv[i + 1])
    try:
        app.run(_train, argv=argv)
    except SystemExit as stop:  # absl exits with status 1 after printing the help it was asked for
        help_asked = any(arg in HELP_FLAGS for arg in argv[1:])
        raise SystemExit(0 if help_asked and stop.code == 1 else stop.code) from None


if __name__ == "__main__":
    main()
