r"""Train one stage of the VITA-Audio curriculum.

    vita-jax-train --config configs/stage1_alignment.py --config.data.files=data/*.jsonl \
        --config.data.tokenizer=/path/Qwen2.5-7B-Instruct --config.init.checkpoint=/path/Qwen2.5-7B-Instruct
    python train.py --config configs/stage4_sft.py:tiny          # tiny model on the bundled sample data

Rerunning the same command resumes from the newest checkpoint in --config.train.workdir; a
workdir holding a run with other settings is refused (give another workdir to start fresh).
Exit status 2 for a bad command line, 1 for a failure (e.g. a non-finite loss; the last good
checkpoint is kept); --debug shows the traceback.
Before spending pod time: `--config.compile_only=true --config.topology=v5e:4x4` compiles the stage's
step for that TPU slice on this machine (needs libtpu) and says whether it fits (exit 1 if not).
"""

import logging
import os
import sys

from absl import app, flags
from ml_collections import config_flags

from vita_jax.cli.errors import UsageError, command
from vita_jax.configs import STAGES, resolve_config_arg

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, f"stage config: a file (configs/stage*.py[:tiny|:toy]) or a stage name ({', '.join(STAGES)})[:tiny|:toy]",
    lock_config=True)
HELP_FLAGS = ("-h", "--help", "-?", "--helpshort", "--helpfull")


def _parse_flags(argv):
    """absl's flag parsing with --help exiting 0 and every flag error a one-line UsageError (exit status 2)."""
    if any(arg in HELP_FLAGS for arg in argv[1:]):
        print(__doc__)
        print(flags.FLAGS.get_help() if "--helpfull" in argv else flags.FLAGS.module_help(sys.modules[__name__]))
        print("  --debug: show the Python traceback of an error (or set VITA_JAX_DEBUG=1)")
        raise SystemExit(0)
    for i, arg in enumerate(argv):
        value = arg[len("--config="):] if arg.startswith("--config=") else (
            argv[i + 1] if arg == "--config" and i + 1 < len(argv) else None)
        if value is not None and not os.path.isfile(value.partition(":")[0]):
            raise UsageError(f"--config {value}: no such config file; give configs/stage*.py[:tiny|:toy] "
                             f"or a stage name ({', '.join(STAGES)})[:tiny|:toy]")
    try:
        return flags.FLAGS(argv)
    except flags.Error as err:
        lines = [line for line in str(err).splitlines() if line.strip()]
        message = lines[0] if len(lines) == 1 else f"{lines[0]} {lines[-1].strip()}"
        raise UsageError(f"{message} (see --help)") from err
    except (AttributeError, KeyError) as err:  # ml_collections: an override of a field the config lacks
        field = str(err).strip("\"'")
        raise UsageError(f"--config.*: the config has no field {field!r} (the fields: vita_jax/configs/train_base.py)"
                         ) from err


def _train(argv):
    if len(argv) > 1:
        raise UsageError(f"unexpected arguments: {' '.join(argv[1:])} (flags look like --config.train.steps=100)")
    cfg = _CONFIG.value
    if cfg is None:
        raise UsageError("--config is required, e.g. --config configs/stage1_alignment.py:tiny")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("absl").setLevel(logging.WARNING)  # orbax's per-save INFO lines
    if cfg.compile_only:
        _compile_only(cfg)
    from vita_jax.train import distributed
    from vita_jax.train.loop import train

    distributed.initialize(cfg.distributed)
    result = train(cfg)
    print(f"done: step {result.final_step}, last loss {result.losses.get(result.final_step, float('nan')):.4f}, "
          f"skipped samples {result.skipped}" + (f", model in {result.final_dir}" if result.final_dir else ""))


def _compile_only(cfg):
    from vita_jax.train.compile_check import check_stage

    report = check_stage(cfg, cfg.topology)
    print(f"{cfg.stage} on {cfg.topology or 'this process'} ({report.devices} x {report.device_kind}, mesh "
          f"data,fsdp,tensor={report.mesh}): {report.summary()}")
    sys.exit(0 if report.fits else 1)


@command
def main(argv):
    """Console script: a stage may be named instead of given by path (`--config stage4_sft:tiny`)."""
    argv = [sys.argv[0], *argv]
    for i, arg in enumerate(argv):
        if arg.startswith("--config="):
            argv[i] = "--config=" + resolve_config_arg(arg[len("--config="):])
        elif arg == "--config" and i + 1 < len(argv):
            argv[i + 1] = resolve_config_arg(argv[i + 1])
    app.run(_train, argv=argv, flags_parser=_parse_flags)


if __name__ == "__main__":
    sys.exit(main())
