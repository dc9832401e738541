"""The speech pipeline (issue 10) on tiny random parts written in their usual layouts: prompts token
for token (spec section 10), streamed chat = the offline replay of the release's policy, the speech
decoder working while the LLM generates, early close, multi-turn history, bad inputs."""

import re
import threading

import numpy as np
import pytest

from vita_jax.audio.wav_io import AudioLoadError, write_wav
from vita_jax.decode.decoder import decode, prepare
from vita_jax.pipeline import AudioChunk, Note, PipelineSetupError, TextDelta, TurnEnd, VoiceChat
from vita_jax.pipeline.conversation import PromptTooLongError
from vita_jax.pipeline.prompts import CHAT_SYSTEM
from vita_jax.pipeline.random_parts import (TINY_AUDIO_CODES, speech_tokenizer_config, write_random_parts,
                                            write_random_speech_tokenizer)

MAX_NEW = 32  # Boost pattern: chunks close at the 11th and 25th tokens; 2 codes are left for the end
MODE = [1, 2]  # few module steps per cycle: a quick compile (the schedules are tested in test_decode_*)


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    return write_random_parts(str(tmp_path_factory.mktemp("parts")))


@pytest.fixture(scope="module")
def loaded(parts):
    """The three parts loaded once (one model object: its compiled programs are shared)."""
    first = VoiceChat.from_dirs(*parts)
    return first.model, first.text_tokenizer, first.speech_tokenizer, first.speech_decoder


def make_chat(loaded, **options):
    options = {"mode": MODE, "max_new_tokens": MAX_NEW, **options}
    chat = VoiceChat(*loaded, **options)
    chat.force_boost_pattern()
    return chat


@pytest.fixture(scope="module")
def chat(loaded):
    return make_chat(loaded, speech_policy="release", flow_steps=1)


def speech(seconds=1.5, rate=16000, seed=0):
    """A voiced-like test signal (harmonics + noise): the tokenizer only needs finite audio."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(seed)
    wav = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((140, 280, 420, 1100), 1))
    return (0.2 * wav + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


# ---- prompts (spec section 10) -------------------------------------------------------------------

def hand_built(chat, *messages, generation=True):
    """ChatML ids built by hand: specials by id, each text piece between specials through the tokenizer."""
    ids, enc = chat.ids, lambda text: chat.text_tokenizer.encode(text, add_special_tokens=False)
    out = []
    for role, parts in messages:
        out.append(ids.im_start)
        pieces = [role + "\n"]
        for part in parts:
            if isinstance(part, str):
                pieces[-1] += part
            else:
                out += enc(pieces[-1]) if pieces[-1] else []
                out += [ids.begin_of_audio] + [ids.audio_offset + c for c in part] + [ids.end_of_audio]
                pieces.append("")
        out += (enc(pieces[-1]) if pieces[-1] else []) + [ids.im_end] + enc("\n")
    return out + ([ids.im_start] + enc("assistant\n") if generation else [])


def rendered(chat, text):
    """The whole ChatML string (audio as <|audio_N|> text) through the tokenizer, as the release does."""
    return chat.text_tokenizer.encode(text, add_special_tokens=False)


def audio_text(codes):
    return "<|begin_of_audio|>" + "".join(f"<|audio_{c}|>" for c in codes) + "<|end_of_audio|>"


def test_prompts_are_the_release_tasks_token_for_token(chat):
    wav = speech()
    codes = chat.speech_tokenizer.encode(wav)
    voice = chat.speech_tokenizer.encode(speech(1.0, seed=1))
    chat.reset()
    system = ("system", [CHAT_SYSTEM])
    cases = {
        "spoken chat": (chat.chat_prompt(codes)[1], [system, ("user", ["\n", codes])],
                        f"<|im_start|>system\n{CHAT_SYSTEM}<|im_end|>\n<|im_start|>user\n\n{audio_text(codes)}"
                        "<|im_end|>\n<|im_start|>assistant\n"),
        "text chat": (chat.chat_prompt(text="What is the weather like?")[1],
                      [system, ("user", ["What is the weather like?"])],
                      f"<|im_start|>system\n{CHAT_SYSTEM}<|im_end|>\n<|im_start|>user\nWhat is the weather like?"
                      "<|im_end|>\n<|im_start|>assistant\n"),
        "asr": (chat.asr_prompt(codes), [("user", ["Convert the speech to text.\n", codes])],
                f"<|im_start|>user\nConvert the speech to text.\n{audio_text(codes)}<|im_end|>\n"
                "<|im_start|>assistant\n"),
        "tts": (chat.tts_prompt("Good morning, Luke."),
                [("user", ["Convert the text to speech.\nGood morning, Luke."])],
                "<|im_start|>user\nConvert the text to speech.\nGood morning, Luke.<|im_end|>\n"
                "<|im_start|>assistant\n"),
        "tts with a voice": (chat.tts_prompt("Hi.", voice),
                             [("system", ["Your Voice: ", voice, "\n"]),
                              ("user", ["Convert the text to speech.\nHi."])],
                             f"<|im_start|>system\nYour Voice: {audio_text(voice)}\n<|im_end|>\n<|im_start|>user\n"
                             "Convert the text to speech.\nHi.<|im_end|>\n<|im_start|>assistant\n"),
    }
    for name, (got, messages, text) in cases.items():
        assert got == hand_built(chat, *messages), name
        assert got == rendered(chat, text), name
    assert chat.ids.begin_of_audio == len(chat.text_tokenizer) - TINY_AUDIO_CODES - 11  # the spec's order
    assert len(chat.conversation) == 0


# ---- streaming ----------------------------------------------------------------------------------

def replay_release_policy(chat, token_ids):
    """Offline, one thread: the release's policy on generate's ids (all codes so far decoded again
    at every <|end_of_audio|> and at the end, new samples kept)."""
    ids, dec = chat.ids, chat.speech_decoder
    codes, pieces, emitted = [], [], 0
    boundaries = []
    for t in token_ids:
        if ids.audio_offset <= t < ids.audio_offset + ids.num_audio_codes:
            codes.append(t - ids.audio_offset)
        elif t == ids.end_of_audio:
            boundaries.append(len(codes))
    if not boundaries or boundaries[-1] != len(codes):
        boundaries.append(len(codes))
    for n in boundaries:
        wav = dec.token2wav(codes[:n], n_timesteps=1)
        pieces.append(wav[emitted:])
        emitted = len(wav)
    return codes, pieces


@pytest.mark.slow
def test_chat_streams_text_then_audio_and_equals_the_offline_release_policy(chat):
    chat.reset()
    events = list(chat.chat_stream(speech=speech(), sample_rate=16000))
    codes_in = chat.speech_tokenizer.encode(speech())
    assert events[-1].prompt_ids == hand_built(chat, ("system", [CHAT_SYSTEM]), ("user", ["\n", codes_in]))
    assert isinstance(events[-1], TurnEnd) and all(not isinstance(e, TurnEnd) for e in events[:-1])
    turn = events[-1]
    kinds = [type(e) for e in events[:-1]]
    assert kinds[0] is TextDelta and AudioChunk in kinds  # the first text token leads, audio follows
    chunks = [e for e in events if isinstance(e, AudioChunk)]
    assert [c.index for c in chunks] == list(range(len(chunks))) and len(chunks) == 3
    assert all(c.sample_rate == 22050 and c.wav.dtype == np.float32 for c in chunks)
    assert [c.ready_s for c in chunks] == sorted(c.ready_s for c in chunks)
    # the LLM's answer is generate's, token for token
    request = prepare(chat.model, [turn.prompt_ids], **chat.generate_options)
    generated = decode(chat.model, [turn.prompt_ids], executable=chat._executable(request),  # compiled once
                       **chat.generate_options).sequences[0].tolist()
    assert turn.token_ids == generated and len(generated) == MAX_NEW
    codes, expected = replay_release_policy(chat, turn.token_ids)
    assert turn.codes == codes and len(codes) == 2 * 8 + 2
    assert [len(c.wav) for c in chunks] == [len(p) for p in expected]
    for chunk, piece in zip(chunks, expected):
        np.testing.assert_allclose(chunk.wav, piece, rtol=0, atol=1e-6)
    assert len(turn.wav) == chat.speech_decoder.mel_frames(len(codes)) * chat.speech_decoder.hop
    assert turn.timings["first_audio_s"] >= turn.timings["first_text_s"] > 0 and turn.timings["rtf"] > 0


@pytest.mark.slow
def test_speech_decoder_works_while_the_llm_generates(loaded):
    """Timestamps, no sleeps: some LLM events reach the pipeline while a chunk is being decoded."""
    chat = make_chat(loaded, mode="vanilla", max_new_tokens=120, speech_policy="bounded")
    turn = list(chat.chat_stream(text="Hello"))[-1]
    assert len(turn.chunks) >= 4
    busy = [(start, ready) for _, _, start, ready in turn.chunks[:-1]]
    overlapping = [t for t in turn.llm_event_s if any(start < t < ready for start, ready in busy)]
    assert overlapping, (busy, turn.llm_event_s)
    assert turn.timings["first_audio_s"] < turn.llm_event_s[-1]  # audio left before the LLM finished
    assert len(turn.wav) == sum(n for _, n, _, _ in turn.chunks)


def test_first_chunk_alone_pauses_the_llm_until_the_first_chunk_is_audio(chat, loaded, monkeypatch):
    """first_chunk_alone: the LLM's loop resumes (once) only after the speech decoder has finished
    the first chunk, and the answer and its audio are those of the pipeline without the pause."""
    import time

    import vita_jax.decode.decoder as decoder
    from vita_jax.pipeline import speech_output

    overlap = make_chat(loaded, speech_policy="release", flow_steps=1, first_chunk_alone=False)
    pushed, resumed = [], []
    push, resume = speech_output.ReleasePolicy.push, decoder.resume
    monkeypatch.setattr(speech_output.ReleasePolicy, "push",
                        lambda self, codes: (push(self, codes), pushed.append(time.perf_counter()))[0])
    monkeypatch.setattr(decoder, "resume", lambda *a, **k: (resumed.append(time.perf_counter()), resume(*a, **k))[1])
    free = overlap.chat(speech=speech(), sample_rate=16000)
    first_push = len(pushed)
    chat.reset()
    paused = chat.chat(speech=speech(), sample_rate=16000)  # first_chunk_alone by default
    assert len(resumed) == 1 and resumed[0] >= pushed[first_push]  # after the paused turn's first chunk
    assert paused.token_ids == free.token_ids and paused.codes == free.codes
    np.testing.assert_allclose(paused.wav, free.wav, rtol=0, atol=1e-6)


def live_pipeline_threads():
    return [t.name for t in threading.enumerate() if t.name.startswith("vita-jax")]


def test_closing_the_stream_early_stops_both_sides(chat):
    chat.reset()
    stream = chat.chat_stream(text="Tell me a long story.")
    assert isinstance(next(stream), TextDelta)
    assert live_pipeline_threads()
    stream.close()
    assert live_pipeline_threads() == []
    assert len(chat.conversation) == 0  # an unfinished turn does not join the history
    assert isinstance(chat.chat(text="Again."), TurnEnd) and live_pipeline_threads() == []


@pytest.mark.slow
def test_multi_turn_history_is_carried_and_trimmed(loaded):
    chat = make_chat(loaded, max_cache_length=260, speech_policy="bounded")
    first = chat.chat(text="Hello there.")
    user1 = chat.prompts.message("user", "Hello there.")
    assistant1 = chat.prompts.assistant_turn(first.token_ids, chat.eos_ids)
    assert chat.conversation.turns == [(user1, assistant1)]
    assert assistant1[-2:] == [chat.ids.im_end, *chat.prompts.encode("\n")]
    second = chat.chat(text="And then?")
    user2 = chat.prompts.message("user", "And then?")
    assert second.timings["prompt_tokens"] == (len(chat.conversation.system_ids) + len(user1) + len(assistant1)
                                               + len(user2) + len(chat.prompts.generation_prompt()))
    assert len(chat.conversation) == 2
    events = list(chat.chat_stream(speech=speech(4.0), sample_rate=16000))  # 50 codes: no room for both turns
    notes = [e for e in events if isinstance(e, Note)]
    assert len(notes) == 1 and "dropped the oldest" in notes[0].text and events[-1].notes == [notes[0].text]
    assert events[-1].timings["prompt_tokens"] <= 260 - MAX_NEW
    assert len(chat.conversation) < 3 and chat.conversation.turns[-1][0] == chat.prompts.message(
        "user", "\n<|audio|>", [chat.speech_tokenizer.encode(speech(4.0))])
    with pytest.raises(PromptTooLongError, match="prompt needs"):
        chat.chat(text="many words " * 200)


def test_asr_returns_text_and_tts_returns_audio(chat):
    text = chat.asr(speech(), sample_rate=16000)
    assert isinstance(text, str)
    wav = chat.tts("Good morning.")
    assert wav.dtype == np.float32 and len(wav) == chat.speech_decoder.mel_frames(2 * 8 + 2) * 256


# ---- bad input ------------------------------------------------------------------------------------

def test_missing_or_mismatched_parts_are_named(parts, tmp_path):
    llm, tok, dec = parts
    with pytest.raises(PipelineSetupError, match="speech decoder directory not found: .*nowhere"):
        VoiceChat.from_dirs(llm, tok, str(tmp_path / "nowhere"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PipelineSetupError, match=r"speech tokenizer \(.*empty\): missing config.json"):
        VoiceChat.from_dirs(llm, str(empty), dec)
    with pytest.raises(PipelineSetupError, match=r"speech decoder \(.*empty\).*config.yaml"):
        VoiceChat.from_dirs(llm, tok, str(empty))
    with pytest.raises(PipelineSetupError, match=r"LLM checkpoint \(.*empty\)"):
        VoiceChat.from_dirs(str(empty), tok, dec)
    other = write_random_speech_tokenizer(str(tmp_path / "tok128"), speech_tokenizer_config(
        d_model=64, heads=4, ffn=128, layers=2, quantize_position=2, codes=128))
    with pytest.raises(PipelineSetupError, match=r"vocabulary mismatch: the LLM tokenizer has 64 audio tokens "
                                                 r"\(<\|audio_0\|> = id \d+\) but the speech tokenizer has 128 codes"):
        VoiceChat.from_dirs(llm, other, dec)


def test_bad_audio_is_refused_in_one_line(chat, tmp_path):
    chat.reset()
    empty = tmp_path / "empty.wav"
    write_wav(str(empty), np.zeros(0, np.float32), 16000)
    (tmp_path / "junk.wav").write_bytes(b"not audio at all")
    cases = [(str(tmp_path / "missing.wav"), "not found"), (str(empty), "empty"),
             (str(tmp_path / "junk.wav"), "cannot read audio file")]
    for path, message in cases:
        with pytest.raises(AudioLoadError, match=message):
            chat.chat(speech=path)
    nan = speech()
    nan[5] = np.nan
    with pytest.raises(AudioLoadError, match="NaN"):
        chat.asr(nan, sample_rate=16000)
    with pytest.raises(AudioLoadError, match="sample_rate"):
        chat.asr(speech())
    assert len(chat.conversation) == 0 and live_pipeline_threads() == []


def test_command_line_writes_the_answer_and_its_chunks(parts, tmp_path, capsys):
    import json

    import soundfile

    from vita_jax.cli import infer

    llm, tok, dec = parts
    question = tmp_path / "question.wav"
    write_wav(str(question), speech(), 16000)
    base = ["--checkpoint", llm, "--speech-tokenizer", tok, "--speech-decoder", dec, "--force-interleave",
            "--mode", "vanilla"]
    out, chunks = tmp_path / "answer.wav", tmp_path / "chunks"
    capsys.readouterr()
    status = infer.main(base + ["--max-new-tokens", str(MAX_NEW), "--audio", str(question), "--out", str(out),
                                "--stream-dir", str(chunks), "--json"])
    assert status == 0  # the exit status of `python infer.py`
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    wav, rate = soundfile.read(str(out), dtype="float32")
    assert rate == 22050 and len(wav) == round(report["audio_s"] * rate) == sum(c["samples"] for c in report["chunks"])
    pieces = [soundfile.read(str(p), dtype="float32")[0] for p in sorted(chunks.iterdir())]
    assert len(pieces) == len(report["chunks"]) and np.array_equal(np.concatenate(pieces), wav)
    assert report["timings"]["first_audio_s"] > 0 and report["generated_tokens"] == MAX_NEW

    for argv, message in [
        (base + ["--audio", str(question), "--out", str(tmp_path / "no" / "a.wav")], "does not exist"),
        (base + ["--audio", str(tmp_path / "missing.wav")], "no such file"),
        (base + ["--task", "asr"], "--task asr needs --audio"),
        (["--audio", str(question)], "need --checkpoint, --speech-tokenizer and --speech-decoder"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            infer.main(argv)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    empty_dir, empty_wav, nan_wav = tmp_path / "empty", tmp_path / "empty.wav", tmp_path / "nan.wav"
    empty_dir.mkdir()
    write_wav(str(empty_wav), np.zeros(0, np.float32), 16000)
    write_wav(str(nan_wav), np.full(1600, np.nan, np.float32), 16000)
    no_out = ["--out", str(tmp_path / "no.wav")]
    for argv, message in [  # one line, exit status 1, nothing written
        (base + ["--max-new-tokens", "1000", "--audio", str(question)], r"the prompt needs \d+ tokens"),
        (base[:3] + [str(empty_dir)] + base[4:] + ["--audio", str(question)],
         r"speech tokenizer \(.*empty\): missing config.json"),
        (base + ["--audio", str(empty_wav)], r".*empty.wav: the audio signal is empty"),
        (base + ["--audio", str(nan_wav)], r".*nan.wav: the audio signal contains NaN"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            infer.main(argv + no_out)
        error = capsys.readouterr().err
        assert exit_info.value.code == 1 and re.match("error: " + message, error) and error.count("\n") == 1, error
    assert not (tmp_path / "no.wav").exists()


def test_interactive_session_reads_text_and_audio_turns(chat, tmp_path, capsys):
    import json

    from vita_jax.cli.voice import interactive

    chat.reset()
    question = tmp_path / "q.wav"
    write_wav(str(question), speech(), 16000)
    capsys.readouterr()
    interactive(chat, stream_dir=str(tmp_path / "chunks"), as_json=True,
                lines=["Hello there.\n", "/reset\n", f"{question}\n", "\n", "never read\n"])
    reports = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert len(reports) == 2 and all(r["audio_s"] > 0 for r in reports)
    assert len(chat.conversation) == 1 and reports[1]["timings"]["tokenize_s"] > 0  # reset, then the audio turn
    assert sorted(p.name for p in (tmp_path / "chunks").iterdir())[0] == "turn00_chunk_000.wav"
