"""The toy MCTP experiment: a shortened curriculum learns (losses fall, module 0 beats trivial
baselines on audio), and the committed trained toy reproduces its recorded figures."""

import json
import os

import numpy as np
import pytest

from vita_jax.configs import STAGES
from vita_jax.data.toy_corpus import write_corpus
from vita_jax.toy.evaluate import TOY_CHECKPOINT, heldout_records, load_toy, module_accuracy, params_digest

FIGURES = os.path.join(os.path.dirname(TOY_CHECKPOINT), "figures.json")


def toy_stage_config(stage, data_dir, workdir, init, steps):
    import importlib

    cfg = importlib.import_module(f"vita_jax.configs.{stage}").get_config("toy")
    cfg.data.update(files=os.path.join(data_dir, "train.jsonl"), tokenizer=os.path.join(data_dir, "tokenizer"))
    cfg.train.update(steps=steps, global_batch_size=8, log_every=steps, workdir=workdir)
    cfg.checkpoint.update(every=steps)
    cfg.init.checkpoint = init
    return cfg


@pytest.mark.slow
def test_short_curriculum_learns_the_toy(tmp_path):
    """Stages 1 and 2 of the toy curriculum, shortened: the backbone's and module 0's losses fall
    and module 0's audio accuracy beats the most frequent code and copying the previous code."""
    from vita_jax.model import load_pretrained
    from vita_jax.train.loop import train

    data = write_corpus(str(tmp_path / "data"), num_train=600, num_heldout=40)
    init, losses = "", {}
    for stage, steps in ((STAGES[0], 70), (STAGES[1], 40)):
        cfg = toy_stage_config(stage, data, str(tmp_path / stage), init, steps)
        result = train(cfg, progress=False)
        losses[stage] = [result.losses[s] for s in sorted(result.losses)]
        init = result.final_dir
    for stage, curve in losses.items():
        assert np.mean(curve[-10:]) < 0.6 * np.mean(curve[:5]), (stage, curve[:5], curve[-10:])
    model, tokenizer = load_toy(init)
    accuracy = module_accuracy(model, tokenizer, heldout_records(24))
    baseline = max(accuracy["baseline_most_frequent_code"], accuracy["baseline_copy_previous"])
    assert accuracy["audio"][0] > baseline + 0.15, accuracy
    assert load_pretrained(init, progress=False).config.num_mctp_modules == 1


def test_committed_toy_reproduces_its_recorded_module_accuracy():
    """The teacher-forced figures of vita_jax/toy/figures.json (written by make toy), recomputed."""
    with open(FIGURES) as f:
        figures = json.load(f)
    recorded, recorded_digest = figures["module_accuracy"], figures["params_sha256"]
    model, tokenizer = load_toy()
    assert params_digest(model.params) == recorded_digest, "the committed toy is not the one figures.json measured"
    measured = module_accuracy(model, tokenizer, heldout_records(recorded["samples"]))
    assert model.config.num_mctp_modules == len(recorded["audio"]) == 10
    assert measured["audio_targets"] == recorded["audio_targets"]
    for key in ("audio", "text"):
        np.testing.assert_allclose(measured[key], recorded[key], atol=1e-6)
        np.testing.assert_allclose(measured["backbone"][key], recorded["backbone"][key], atol=1e-6)


def test_agreement_counts_positions_alignment_and_first_divergence():
    """One dropped code shifts every later position but keeps the rest of the answer aligned; the
    first divergence is classified by the reference's token there."""
    from vita_jax.data.tokenizer import VocabIds
    from vita_jax.toy.evaluate import agreement, common_subsequence

    ids = VocabIds(im_start=0, im_end=0, begin_of_audio=0, end_of_audio=0, audio_offset=100, num_audio_codes=10,
                   vocab_size=110)
    reference = [[1, 100, 101, 102, 103, 2], [1, 2, 104]]
    answers = [[1, 100, 102, 103, 2], [1, 3, 104]]  # code 101 dropped; text 2 -> 3
    report = agreement(answers, reference, ids)
    assert common_subsequence(answers[0], reference[0]) == [1, 100, 102, 103, 2]
    assert report["audio"] == 2 / 5  # 100 and 104 in place; 102, 103 shifted
    assert report["audio_aligned"] == 4 / 5
    assert report["text"] == 2 / 4 and report["text_aligned"] == 3 / 4
    assert report["first_divergence"] == {"audio": 1, "text": 1, "length": 0}
    assert report["exact"] == 0.0
    assert agreement([[1, 100]], [[1, 100, 2]], ids)["first_divergence"]["length"] == 1
