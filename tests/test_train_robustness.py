"""Issue 9 for training: a corrupt checkpoint is set aside and its step saved again (also the final
step's, which used to fail with StepAlreadyExistsError), metrics.jsonl has each step once after a
resume, a malformed data line is skipped (the tiny tokenizer included), every export carries the
tokenizer so `infer --prompt` works on it, a resume with other settings is refused, and `:tiny`
configs get one workdir per distinct config."""

import json
import os
import shutil

import pytest

from vita_jax.configs import stage1_alignment, stage4_sft
from tests.helpers.train import SAMPLE_DATA, tiny_run_config
from vita_jax.train.loop import train
from vita_jax.train.run_identity import RunConfigMismatch, resolve_workdir


def checkpoint_steps(workdir):
    return sorted(int(p) for p in os.listdir(workdir / "checkpoints") if p.isdigit())


def metric_steps(workdir):
    with open(workdir / "metrics.jsonl") as f:
        return [json.loads(line)["step"] for line in f]


@pytest.mark.slow
def test_corrupt_checkpoints_resume_metrics_tokenizer_and_export(tmp_path, capsys, caplog):
    data = tmp_path / "data.jsonl"
    data.write_text(open(SAMPLE_DATA).read() + '{"messages": [ not json\n')
    workdir = tmp_path / "run"
    cfg = tiny_run_config(stage1_alignment, workdir, steps=6, files=str(data))
    cfg.train.log_every = 1
    cfg.export.enabled = True

    first = train(cfg, progress=False, stop_after_steps=5)  # "crashes" after step 5; saved at 1, 2, 4
    assert sorted(first.losses) == [1, 2, 3, 4, 5] and checkpoint_steps(workdir) == [1, 2, 4]
    assert metric_steps(workdir) == [1, 2, 3, 4, 5]
    shutil.rmtree(workdir / "checkpoints" / "4" / "state")  # a corrupt mid-run checkpoint

    resumed = train(cfg, progress=False)
    assert sorted(resumed.losses) == [3, 4, 5, 6]
    assert metric_steps(workdir) == [1, 2, 3, 4, 5, 6]  # steps 3..5 once, not twice
    assert checkpoint_steps(workdir) == [2, 4, 6]  # step 4 saved again (keep=3)
    assert os.path.isdir(workdir / "checkpoints" / "4" / "state")
    assert len(os.listdir(workdir / "unreadable_checkpoints")) == 1
    unreadable = [r.getMessage() for r in caplog.records if "is unreadable" in r.getMessage()]
    assert len(unreadable) == 1 and "\n" not in unreadable[0]  # not a 61-line TensorStore dump

    shutil.rmtree(workdir / "checkpoints" / "6" / "state")  # a corrupt final-step checkpoint
    again = train(cfg, progress=False)  # used to stop with StepAlreadyExistsError, no export
    assert sorted(again.losses) == [5, 6] and again.final_dir == str(workdir / "final")
    assert os.path.isdir(workdir / "checkpoints" / "6" / "state")
    assert metric_steps(workdir) == [1, 2, 3, 4, 5, 6]

    from transformers import AutoTokenizer

    from vita_jax.cli import infer

    saved = AutoTokenizer.from_pretrained(os.path.join(again.final_dir, "hf_files"))  # the tokenizer it trained with
    assert saved.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
                                     ) == infer.chat_prompt("Hi")

    capsys.readouterr()
    infer.main(["--checkpoint", again.final_dir, "--prompt", "Hello", "--mode", "vanilla",
                "--max-new-tokens", "3", "--json"])
    captured = capsys.readouterr()
    report = json.loads(captured.out.strip().splitlines()[-1])
    assert report["num_tokens"] == 3 and "compiling vanilla decoding" in captured.err  # not silent while compiling

    cfg.train.steps = 8  # another LR schedule: not the same run
    with pytest.raises(RunConfigMismatch, match=r"train\.steps: 6 in the checkpoint, 8 now.*--config\.train\.workdir"):
        train(cfg, progress=False)


def test_tiny_configs_get_one_workdir_per_distinct_config():
    a, b = stage4_sft.get_config("tiny"), stage4_sft.get_config("tiny")
    assert a.train.workdir == "" and resolve_workdir(a) == resolve_workdir(b)
    b.train.steps = 30
    assert resolve_workdir(a) != resolve_workdir(b)
    b.train.steps, b.train.log_every, b.checkpoint.every = a.train.steps, 1, 3  # execution only: same run
    assert resolve_workdir(a) == resolve_workdir(b)
    assert resolve_workdir(stage1_alignment.get_config("tiny")) != resolve_workdir(a)
