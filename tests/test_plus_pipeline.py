"""The speech pipeline on a tiny random VITA-Audio-Plus checkpoint (no speech tokenizer): speech in
as `<|context_of_audio|>` runs of T + 4 spliced at prefill, earlier turns' audios kept in the
history, speech out through the GLM-4-Voice decoder; `infer.py`; audio count / length buckets;
bad input."""

import json
import re
import shutil

import numpy as np
import pytest

from tests.helpers.compiles import count_compiles
from tests.helpers.plus import speech, write_plus_parts
from vita_jax.audio.wav_io import AudioLoadError, write_wav
from vita_jax.decode.decoder import prepare
from vita_jax.pipeline import PipelineSetupError, VoiceChat
from vita_jax.plus.frontend import num_lfr_rows
from vita_jax.plus.model import placeholder_runs

MAX_NEW = 16
MODE = [1, 2]


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    return write_plus_parts(str(tmp_path_factory.mktemp("plus_parts")), num_mctp_modules=2)


@pytest.fixture(scope="module")
def chat(parts):
    chat = VoiceChat.from_dirs(parts[0], None, parts[1], mode=MODE, max_new_tokens=MAX_NEW, speech_policy="release")
    chat.force_boost_pattern()
    return chat


def reference(chat, prompt, audios):
    """The model's own decode of `prompt` with `audios` given explicitly (the pipeline's compiled program)."""
    model, options = chat.model, chat.generate_options
    request = prepare(model, [prompt], prompt_inputs=model.prompt_inputs([prompt], audios), **options)
    return list(model.decode([prompt], audios=audios, executable=chat._executable(request), **options).sequences[0])


@pytest.mark.slow
def test_spoken_turns_splice_their_audio_and_stay_in_the_history(chat):
    chat.reset()
    context = chat.model.tokens.context_of_audio
    first, second = speech(1.0, seed=1), speech(1.2, seed=2)
    turn1 = chat.chat(speech=first, sample_rate=16000)
    assert [run[2] for run in placeholder_runs([turn1.prompt_ids], context)] == [num_lfr_rows(16000) + 4]
    assert turn1.token_ids == reference(chat, turn1.prompt_ids, [first])[:len(turn1.token_ids)]
    assert turn1.token_ids != reference(chat, turn1.prompt_ids, [speech(1.0, seed=5)])[:len(turn1.token_ids)]
    assert len(turn1.wav) > 0 and turn1.codes  # speech out through the decoder

    turn2 = chat.chat(speech=second, sample_rate=16000)
    assert turn2.prompt_ids[:len(turn1.prompt_ids)] == turn1.prompt_ids  # history kept, placeholders included
    assert [run[2] for run in placeholder_runs([turn2.prompt_ids], context)] == [
        num_lfr_rows(len(first)) + 4, num_lfr_rows(len(second)) + 4]
    assert turn2.token_ids == reference(chat, turn2.prompt_ids, [first, second])[:len(turn2.token_ids)]
    kept = chat.conversation.audios()
    assert len(kept) == 2 and np.array_equal(kept[0], first) and np.array_equal(kept[1], second)

    # a new audio length in the same buckets reuses every compiled program (LLM and speech decoder)
    chat.reset()
    with count_compiles() as counts:
        turn = chat.chat(speech=speech(1.3, seed=3), sample_rate=16000)
    assert counts.compiles == 0 and turn.timings["compile_s"] < 0.1


def test_audio_count_and_length_buckets_reuse_the_encoder(chat):
    model = chat.model
    model.encode_batch([speech(1.0), speech(1.1), speech(1.2)])
    with count_compiles() as counts:
        rows, lengths = model.encode_batch([speech(0.95, 1), speech(1.3, 2), speech(1.05, 3), speech(1.15, 4)])
    assert counts.compiles == 0 and rows.shape[0] == 4 and list(lengths) == [
        num_lfr_rows(int(s * 16000)) + 4 for s in (0.95, 1.3, 1.05, 1.15)]
    # the padded (zero-length) audio of a 3-audio batch changes nothing in the real ones
    three, _ = model.encode_batch([speech(0.95, 1), speech(1.3, 2), speech(1.05, 3)])
    np.testing.assert_allclose(three, rows[:3], atol=1e-6)
    assert np.isfinite(three).all()


def test_bad_speech_input(chat, parts, tmp_path):
    with pytest.raises(AudioLoadError, match="contains NaN"):
        chat.chat(speech=np.full(8000, np.nan, np.float32), sample_rate=16000)
    with pytest.raises(AudioLoadError, match="empty"):
        chat.asr(np.zeros(0, np.float32), sample_rate=16000)
    with pytest.raises(AudioLoadError, match="sample_rate must be a positive integer"):
        chat.chat(speech=speech(0.5), sample_rate=16000.0)
    with pytest.raises(AudioLoadError, match="needs its sample_rate"):
        chat.asr(speech(0.5))
    no_mvn = tmp_path / "no_mvn"
    shutil.copytree(parts[0], no_mvn)
    (no_mvn / "am.mvn").unlink()
    with pytest.raises(PipelineSetupError, match=r"LLM checkpoint .*am\.mvn"):
        VoiceChat.from_dirs(str(no_mvn), None, parts[1])
    with pytest.raises(PipelineSetupError, match="speech decoder: none given"):
        VoiceChat.from_dirs(parts[0], None, None)


@pytest.mark.slow
def test_infer_cli_with_a_plus_checkpoint(parts, tmp_path, capsys):
    import soundfile

    from vita_jax.cli import infer

    question, out = tmp_path / "question.wav", tmp_path / "answer.wav"
    write_wav(str(question), speech(1.0), 16000)
    base = ["--checkpoint", parts[0], "--speech-decoder", parts[1], "--force-interleave", "--mode", "1,2",
            "--max-new-tokens", str(MAX_NEW)]
    capsys.readouterr()
    assert infer.main(base + ["--audio", str(question), "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["generated_tokens"] == MAX_NEW and report["audio_s"] > 0
    assert len(soundfile.read(str(out))[0]) == round(report["audio_s"] * 22050)
    with pytest.raises(SystemExit) as exit_info:
        infer.main(["--checkpoint", parts[0], "--audio", str(question)])
    assert exit_info.value.code == 2 and "needs no --speech-tokenizer): missing --speech-decoder (" in \
        capsys.readouterr().err
    nan_wav = tmp_path / "nan.wav"
    write_wav(str(nan_wav), np.full(1600, np.nan, np.float32), 16000)
    with pytest.raises(SystemExit) as exit_info:
        infer.main(base + ["--audio", str(nan_wav)])
    error = capsys.readouterr().err
    assert exit_info.value.code == 1 and re.match(r"error: .*nan.wav: the audio signal contains NaN", error)
