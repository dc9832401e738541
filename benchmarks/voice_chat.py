"""Speech in, speech out on this machine: the whole VoiceChat path with real geometries, random weights.

    python benchmarks/voice_chat.py [--runs turbo:1:bounded boost:1:bounded ...] [--repeats 3] [--json out.json]

Parts: the Qwen2.5-0.5B LLM geometry (24 layers, K=10 MCTP modules, the 168072-token vocabulary),
the GLM-4-Voice tokenizer geometry (16 Whisper-VQ layers, 16384 codes) and decoder geometry (the
release's config.yaml), all with random weights; the text tokenizer is a small byte-level BPE with
VITA-Audio's specials and 16384 audio tokens (its ids differ from Qwen's, the LLM's compute does
not), trained so that the section-10 chat prompt has about as many tokens as with Qwen's (its
length is printed). Input: 5 s of espeak-ng speech in a wav file; spoken chat. The LLM's random
weights are rounded to bfloat16, as the released checkpoints store them, then held as
`--param-dtype` says (default mixed: float32, with the lm_head in bfloat16; see
vita_jax/param_storage.py); compute is float32.

Random weights almost never emit <|end_of_audio|>, so the LLM's answer is FORCED into the
release's Boost interleaving (1 text token, <|begin_of_audio|>, 8 codes, <|end_of_audio|>, then 4
text + 10 audio tokens repeating) by a logits mask: every forward and the sampling run as without
it, only ids of the wrong kind get -inf. Each run is `mode:flow_steps:policy[:overlap]` (`overlap`:
VoiceChat's first_chunk_alone=False, the LLM running on while the first chunk is decoded); it is run once to
compile (and warm) every program, then timed `--repeats` times: each figure is the median over
the repeats (and `spread`: the lowest and highest first_audio_s and audio_s_per_wall_s).

Per run: first_audio_s (from the moment the input file is read to the first audio sample out:
speech tokenizer, prompt, LLM prefill and first chunk, first decoder chunk), audio_s_per_wall_s
(over the answer: the audio of every chunk after the first / the seconds from the first chunk
ready to the last one ready; >= 1.0 means that, on average, audio is made as fast as it plays),
from_input_audio_s_per_wall_s (all the audio / the seconds from the input read to the last chunk
ready), gaps (chunks that became ready after the audio before them had finished playing, playback
starting with the first chunk), gap_s (their total silence), plus tokenize/prefill/first-text
times. The machine may be shared.
"""

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from vita_jax.audio.decoder_config import DecoderConfig, FlowConfig, HiftConfig
from vita_jax.audio.decoder_params import random_decoder_params
from vita_jax.audio.speech_decoder import SpeechDecoder
from vita_jax.audio.speech_tokenizer import SpeechTokenizer
from vita_jax.audio.wav_io import load_audio, write_wav
from vita_jax.configs.model import get_config
from vita_jax.model import VitaAudioModel
from vita_jax.param_storage import PARAM_DTYPES, store
from vita_jax.pipeline import VoiceChat
from vita_jax.pipeline.prompts import CHAT_SYSTEM
from vita_jax.pipeline.random_parts import random_speech_tokenizer, speech_tokenizer_config
from vita_jax.pipeline.speech_output import POLICIES
from vita_jax.vocabulary import NUM_AUDIO_CODES

SENTENCE = ("Hello, could you tell me what the weather will be like tomorrow morning in the city, "
            "and whether I should take an umbrella with me?")
DEFAULT_RUNS = ("turbo:1:bounded", "turbo:10:bounded", "boost:1:bounded", "vanilla:1:bounded", "turbo:1:release")


def espeak_input(path, seconds=5.0):
    """`seconds` of espeak-ng speech (16 kHz) written to `path`."""
    if shutil.which("espeak-ng") is None:
        raise SystemExit("benchmarks/voice_chat.py needs espeak-ng for its input speech (apt-get install espeak-ng)")
    raw = path + ".raw.wav"
    subprocess.run(["espeak-ng", "-w", raw, SENTENCE], check=True, capture_output=True)
    wav = load_audio(raw)
    n = int(seconds * 16000)
    wav = np.pad(wav, (0, max(0, n - len(wav))))[:n]
    write_wav(path, wav, 16000)
    return path


def prompt_sized_tokenizer(out_dir):
    """A byte-level BPE (Qwen2 pre-tokenizer) whose merges cover the chat prompt's words, so the
    prompt is about as long as with Qwen's 151k-token BPE; extended with 16384 audio tokens."""
    from vita_jax.data.tiny_tokenizer import build_tiny_tokenizer
    from vita_jax.data.tokenizer import load_extended_tokenizer

    texts = [CHAT_SYSTEM, "system\nuser\nassistant\n", SENTENCE] * 50
    build_tiny_tokenizer(texts, out_dir, vocab_size=1000)
    return load_extended_tokenizer(out_dir, NUM_AUDIO_CODES)


def build_parts(workdir, param_dtype, seed=0):
    """(model, text tokenizer, speech tokenizer, speech decoder) with the real geometries; the LLM's
    weights bfloat16 values (like a release) stored as `param_dtype`."""
    start = time.perf_counter()
    model = VitaAudioModel.random(get_config("qwen2.5-0.5b"), seed=seed)
    model.params = store(jax.tree.map(lambda x: x.astype(jnp.bfloat16), model.params), param_dtype)
    text_tokenizer = prompt_sized_tokenizer(os.path.join(workdir, "text-tokenizer"))
    checkpoint = random_speech_tokenizer(speech_tokenizer_config(), seed)
    speech_tokenizer = SpeechTokenizer(checkpoint.tree["params"], checkpoint.model_config, checkpoint.feature_config)
    decoder_cfg = DecoderConfig(FlowConfig(), HiftConfig())
    decoder = SpeechDecoder(decoder_cfg, random_decoder_params(decoder_cfg, seed))
    print(f"random parts built in {time.perf_counter() - start:.0f} s", flush=True)
    return model, text_tokenizer, speech_tokenizer, decoder


def playback_gaps(chunks, sample_rate):
    """(number of gaps, their total seconds): playback starts when the first chunk is ready and each
    chunk plays after the previous one, or when it is ready if that is later (a gap)."""
    gaps, silence, play_end = 0, 0.0, None
    for _, samples, _, ready in chunks:
        if play_end is not None and ready > play_end:
            gaps, silence = gaps + 1, silence + ready - play_end
        play_end = max(ready, play_end if play_end is not None else ready) + samples / sample_rate
    return gaps, silence


def timed_turn(chat, question):
    """The figures of one spoken-chat turn (the conversation is reset first)."""
    chat.reset()
    turn = chat.chat(speech=question)
    t, chunks, rate = turn.timings, turn.chunks, turn.sample_rate
    gaps, gap_s = playback_gaps(chunks, rate)
    first_ready, last_ready = chunks[0][3], chunks[-1][3]
    after_first = sum(samples for _, samples, _, _ in chunks[1:]) / rate
    return {"first_audio_s": t["first_audio_s"],
            "audio_s_per_wall_s": after_first / (last_ready - first_ready) if len(chunks) > 1 else None,
            "from_input_audio_s_per_wall_s": t["audio_s"] / last_ready, "gaps": gaps, "gap_s": gap_s,
            "chunks": len(chunks), "audio_s": t["audio_s"], "tokenize_s": t["tokenize_s"],
            "prefill_s": t["prefill_s"], "first_text_s": t["first_text_s"], "total_s": t["total_s"],
            "generated_tokens": len(turn.token_ids), "prompt_tokens": t["prompt_tokens"],
            "first_chunk_decode_s": chunks[0][3] - chunks[0][2]}


def measure(parts, question, mode, flow_steps, policy, max_new_tokens, repeats, first_chunk_alone=True):
    """Median figures of `repeats` timed turns after one warm-up turn (which compiles)."""
    chat = VoiceChat(*parts, mode=mode, max_new_tokens=max_new_tokens, speech_policy=policy, flow_steps=flow_steps,
                     first_chunk_alone=first_chunk_alone)
    chat.force_boost_pattern()
    warm_start = time.perf_counter()
    chat.chat(speech=question)  # compiles every program this run uses
    warm_s = time.perf_counter() - warm_start
    turns = [timed_turn(chat, question) for _ in range(repeats)]
    result = {key: float(np.median([turn[key] for turn in turns])) if turns[0][key] is not None else None
              for key in turns[0]}
    result.update(mode=mode, flow_steps=flow_steps, policy=policy, first_chunk_alone=first_chunk_alone,
                  repeats=repeats, warmup_s=warm_s,
                  gaps=int(np.median([turn["gaps"] for turn in turns])),
                  spread={key: [min(turn[key] for turn in turns), max(turn[key] for turn in turns)]
                          for key in ("first_audio_s", "audio_s_per_wall_s") if turns[0][key] is not None})
    return result


def parse_run(run):
    """`mode:flow_steps:policy[:overlap]` -> (mode, flow_steps, policy, first_chunk_alone)."""
    fields = run.split(":")
    if (len(fields) not in (3, 4) or not fields[1].isdigit() or int(fields[1]) < 1 or fields[2] not in POLICIES
            or fields[3:] not in ([], ["overlap"])):
        raise ValueError(f"--runs {run}: expected mode:flow_steps:policy[:overlap] with flow_steps >= 1 and policy "
                         f"one of {', '.join(POLICIES)}, e.g. turbo:1:bounded")
    return fields[0], int(fields[1]), fields[2], fields[3:] != ["overlap"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", default=list(DEFAULT_RUNS), help="mode:flow_steps:policy[:overlap] ...")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="answer length (Boost pattern: 8 codes, "
                                                                        "0.64 s of audio, per 14 tokens)")
    parser.add_argument("--seconds", type=float, default=5.0, help="input speech length")
    parser.add_argument("--repeats", type=int, default=3, help="timed turns per run (figures: their median)")
    parser.add_argument("--param-dtype", choices=PARAM_DTYPES, default="mixed", help="the LLM's weight storage")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    try:
        runs = [parse_run(run) for run in args.runs]
    except ValueError as error:
        parser.error(str(error))

    print(f"jax {jax.__version__}, backend {jax.default_backend()}, {os.cpu_count()} CPUs, float32 compute, random "
          f"weights (the LLM's: bfloat16 values stored as --param-dtype {args.param_dtype})")
    print("NOTE: the LLM's answer is forced into the Boost interleaving pattern by a logits mask (random weights "
          "never close an audio span); the compute is unchanged.", flush=True)
    results = {}
    with tempfile.TemporaryDirectory() as workdir:
        question = espeak_input(os.path.join(workdir, "question.wav"), args.seconds)
        parts = build_parts(workdir, args.param_dtype)
        header = (f"{'run':24} {'first audio s':>13} {'audio s/wall s':>14} {'from input':>10} {'gaps':>5} "
                  f"{'gap s':>6} {'chunks':>6} {'audio s':>7} {'tokenize s':>10} {'prefill s':>9} {'1st text s':>10} "
                  f"{'total s':>7}")
        rows = []
        for run, (mode, steps, policy, first_chunk_alone) in zip(args.runs, runs):
            r = measure(parts, question, mode, steps, policy, args.max_new_tokens, args.repeats, first_chunk_alone)
            results[run] = r
            rows.append(f"{run:24} {r['first_audio_s']:13.2f} {r['audio_s_per_wall_s']:14.2f} "
                        f"{r['from_input_audio_s_per_wall_s']:10.2f} {r['gaps']:5d} {r['gap_s']:6.2f} "
                        f"{r['chunks']:6.0f} {r['audio_s']:7.2f} {r['tokenize_s']:10.2f} {r['prefill_s']:9.2f} "
                        f"{r['first_text_s']:10.2f} {r['total_s']:7.2f}")
            low, high = r["spread"]["first_audio_s"]
            print(f"{run}: done (warm-up incl. compiles {r['warmup_s']:.0f} s); prompt {r['prompt_tokens']:.0f} "
                  f"tokens, {r['generated_tokens']:.0f} generated; first audio {low:.2f}-{high:.2f} s over "
                  f"{args.repeats} turns", flush=True)
    print(f"medians of {args.repeats} turns; audio s/wall s: over the answer (after the first chunk), from input: "
          f"all the audio over the time since the input was read")
    print(header)
    print("\n".join(rows))
    if args.json:
        from vita_jax.atomic import atomic_file

        with atomic_file(args.json, "w") as f:
            json.dump({"forced_interleave": "boost pattern via logits mask (random weights)",
                       "param_dtype": args.param_dtype, "repeats": args.repeats, "input_s": args.seconds,
                       "max_new_tokens": args.max_new_tokens, "runs": results}, f, indent=2)


if __name__ == "__main__":
    main()
