"""The speech tasks of `infer.py` (spoken chat, ASR, TTS, interactive sessions, the --demo parts):
argument group, pipeline construction, running a task, printing and writing its output."""

import json
import os
import sys
import tempfile

from vita_jax.pipeline import AudioChunk, Note, TextDelta, TurnEnd, VoiceChat
from vita_jax.pipeline.speech_output import POLICIES

TASKS = ("chat", "asr", "tts")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".opus")
REAL_PARTS = ("--checkpoint VITA-MLLM/VITA-Audio-Boost (or VITA-Audio-Balance, VITA-Audio-Plus-Vanilla), "
              "--speech-tokenizer THUDM/glm-4-voice-tokenizer, --speech-decoder THUDM/glm-4-voice-decoder "
              "(local copies of these published checkpoints)")
DEMO_BANNER = ("--demo: the LLM is the built-in trained toy (a synthetic spoken language, docs/toy-mctp.md); the speech "
               "tokenizer and decoder are tiny RANDOM checkpoints just made, so the toy hears random codes and the "
               "audio is noise; the path and its timings are real (a first turn's times include compiling the LLM's "
               "and the speech decoder's programs). For real speech use " + REAL_PARTS + ".")


def add_arguments(parser):
    group = parser.add_argument_group("speech tasks (speech in, speech out)")
    group.add_argument("--task", choices=TASKS, help="chat (default), asr or tts")
    group.add_argument("--audio", help="input speech file (chat, asr)")
    group.add_argument("--text", help="input text (chat: a text turn or text beside --audio; tts: what to say)")
    group.add_argument("--voice", help="tts: reference recording used as the release's voice prompt")
    group.add_argument("--out", help="write the answer's audio to this .wav (22.05 kHz float32)")
    group.add_argument("--stream-dir", help="also write every audio chunk to DIR/chunk_NNN.wav as it arrives")
    group.add_argument("--interactive", action="store_true",
                       help="multi-turn chat: read text lines or audio paths from stdin (/reset, empty line quits)")
    add_speech_part_arguments(group)


def add_speech_part_arguments(group):
    """The speech parts and how the answer is spoken: shared by infer.py's speech tasks and the server."""
    group.add_argument("--speech-tokenizer", "--tokenizer-dir", dest="speech_tokenizer",
                       help="GLM-4-Voice tokenizer directory (original or converted; not needed by a "
                            "VITA-Audio-Plus --checkpoint)")
    group.add_argument("--speech-decoder", "--decoder-dir", dest="speech_decoder",
                       help="GLM-4-Voice decoder directory (original or converted)")
    group.add_argument("--speech-policy", choices=POLICIES, default="bounded",
                       help="bounded (default): constant-cost bounded-context streaming; release: re-decode all "
                            "codes at every chunk, as the release (cost and compiles grow with the answer)")
    group.add_argument("--flow-steps", type=int, default=1, help="the decoder's flow-matching steps (release "
                                                                 "streams with 1, decodes offline with 10)")
    group.add_argument("--overlap-first-chunk", action="store_true",
                       help="let the LLM run on while the first audio chunk is decoded (default: it pauses, so the "
                            "first chunk gets every core and the first audio leaves sooner; same output)")
    group.add_argument("--force-interleave", action="store_true",
                       help="force the Boost text/audio pattern with a logits mask (random weights; on for the "
                            "server's --demo)")


def check_speech_part_arguments(parser, args):
    if args.flow_steps < 1:
        parser.error(f"--flow-steps must be >= 1, got {args.flow_steps}")


def speech_task_flags(args):
    """Whether any flag asks for a speech task."""
    return bool(args.task or args.audio or args.voice or args.interactive or args.speech_tokenizer
                or args.speech_decoder or args.text is not None)


def wants_speech(args):
    return bool(args.demo or speech_task_flags(args))


def missing_parts(args):
    """The flags a speech task still needs: --checkpoint, --speech-decoder and, unless the
    checkpoint is VITA-Audio-Plus, --speech-tokenizer."""
    from vita_jax.plus import is_plus_checkpoint

    try:
        plus = bool(args.checkpoint) and os.path.isdir(args.checkpoint) and is_plus_checkpoint(args.checkpoint)
    except (OSError, ValueError):
        plus = False  # reported when the checkpoint loads
    parts = (("--checkpoint", args.checkpoint), ("--speech-tokenizer", args.speech_tokenizer or plus),
             ("--speech-decoder", args.speech_decoder))
    return [flag for flag, given in parts if not given]


def check_arguments(parser, args):
    """Usage errors, before anything is loaded or written."""
    task = args.task or "chat"
    missing = [] if args.demo else missing_parts(args)
    if missing:
        parser.error(f"speech tasks need --checkpoint, --speech-tokenizer and --speech-decoder (or --demo; a "
                     f"VITA-Audio-Plus --checkpoint needs no --speech-tokenizer): missing {', '.join(missing)}")
    if args.prompt is not None or args.input_ids is not None:
        parser.error("--prompt / --input-ids are the token mode; speech tasks take --audio / --text")
    if args.interactive:
        if task != "chat" or args.out or args.audio or args.text is not None:
            parser.error("--interactive is a chat session reading stdin: no --task other than chat, --audio, "
                         "--text or --out")
    elif task == "asr" and not args.audio:
        parser.error("--task asr needs --audio")
    elif task == "tts" and not args.text:
        parser.error("--task tts needs --text")
    elif task == "chat" and not args.audio and args.text is None and not args.demo:
        parser.error("--task chat needs --audio and/or --text")
    if args.voice and task != "tts":
        parser.error("--voice is the tts voice prompt: use it with --task tts")
    if args.out:
        parent = os.path.dirname(os.path.abspath(args.out))
        if not os.path.isdir(parent):
            parser.error(f"--out {args.out}: the directory {parent} does not exist")
        if os.path.isdir(args.out):
            parser.error(f"--out {args.out} is a directory; give a .wav file name")
    if args.stream_dir and os.path.exists(args.stream_dir) and not os.path.isdir(args.stream_dir):
        parser.error(f"--stream-dir {args.stream_dir} exists and is not a directory")
    for flag, path in (("--audio", args.audio), ("--voice", args.voice)):
        if path and not os.path.isfile(path):
            parser.error(f"{flag} {path}: no such file")
    check_speech_part_arguments(parser, args)


def build_pipeline(args, options, root=None, random_demo=False):
    """VoiceChat from the flags (for --demo: the trained toy and tiny random speech parts written under `root`;
    with `random_demo`, a tiny random LLM too, forced into the Boost pattern as the server's demo uses)."""
    if args.demo and random_demo:
        from vita_jax.pipeline.random_parts import write_random_parts

        dirs = write_random_parts(root)
    elif args.demo:
        from vita_jax.pipeline.random_parts import write_random_decoder, write_random_speech_tokenizer
        from vita_jax.toy.evaluate import TOY_CHECKPOINT

        dirs = (TOY_CHECKPOINT, write_random_speech_tokenizer(os.path.join(root, "tiny-glm-4-voice-tokenizer")),
                write_random_decoder(os.path.join(root, "tiny-glm-4-voice-decoder")))
    else:
        dirs = (args.checkpoint, args.speech_tokenizer, args.speech_decoder)
    chat = VoiceChat.from_dirs(*dirs, param_dtype=args.param_dtype, speech_policy=args.speech_policy,
                               flow_steps=args.flow_steps, first_chunk_alone=not args.overlap_first_chunk, **options)
    if args.force_interleave or (args.demo and random_demo):
        chat.force_boost_pattern()
    return chat


def task_events(chat, task, audio=None, text=None, voice=None):
    if task == "asr":
        return chat.asr_stream(audio)
    if task == "tts":
        return chat.tts_stream(text, voice)
    return chat.chat_stream(speech=audio, text=text)


def run_task(events, out=None, stream_dir=None, as_json=False, prefix="chunk"):
    """Print the stream (text as it comes, a line per audio chunk), write the wav files, end with
    the timings; or print one JSON object. Returns the TurnEnd."""
    from vita_jax.audio.wav_io import write_wav

    turn, echo = None, not as_json
    for event in events:
        if isinstance(event, Note) and echo:
            print(f"[note: {event.text}]", flush=True)
        elif isinstance(event, TextDelta) and echo:
            print(event.text, end="", flush=True)
        elif isinstance(event, AudioChunk):
            if stream_dir:
                os.makedirs(stream_dir, exist_ok=True)
                write_wav(os.path.join(stream_dir, f"{prefix}_{event.index:03d}.wav"), event.wav, event.sample_rate)
            if echo:
                print(f"\n[audio chunk {event.index}: {event.duration_s:.2f} s (at {event.start_s:.2f} s of the "
                      f"answer), ready {1e3 * event.ready_s:.0f} ms after the input]", flush=True)
        elif isinstance(event, TurnEnd):
            turn = event
    if out and len(turn.wav):
        write_wav(out, turn.wav, turn.sample_rate)
    if as_json:
        print(json.dumps(turn_report(turn, out)))
    else:
        print()
        print_timings(turn, out)
    return turn


def turn_report(turn, out=None):
    return {"text": turn.text, "stop_reason": turn.stop_reason, "generated_tokens": len(turn.token_ids),
            "audio_codes": len(turn.codes), "audio_s": len(turn.wav) / turn.sample_rate,
            "sample_rate": turn.sample_rate, "out": out if out and len(turn.wav) else None,
            "chunks": [{"index": i, "samples": n, "decode_start_s": start, "ready_s": ready}
                       for i, n, start, ready in turn.chunks],
            "timings": turn.timings, "notes": turn.notes}


def _ms(seconds):
    return "-" if seconds is None else f"{1e3 * seconds:.0f} ms"


def print_timings(turn, out=None):
    t = turn.timings
    print(f"{len(turn.token_ids)} tokens ({turn.stop_reason}), {len(turn.codes)} audio codes, "
          f"{len(turn.wav) / turn.sample_rate:.2f} s of audio in {len(turn.chunks)} chunks"
          + (f", written to {out}" if out and len(turn.wav) else ""))
    print(f"timings from the input read: tokenize {_ms(t['tokenize_s'])}, compile {_ms(t['compile_s'])}, "
          f"prefill {_ms(t['prefill_s'])}, first text {_ms(t['first_text_s'])}, first audio "
          f"{_ms(t['first_audio_s'])}, total {_ms(t['total_s'])}"
          + (f", real-time factor {t['rtf']:.2f}" if t["rtf"] else ""))


def interactive(chat, stream_dir=None, as_json=False, lines=None):
    """Multi-turn chat: each line of `lines` (default stdin) is an audio path (an existing file
    with an audio suffix) or a text turn; /reset forgets the history; an empty line or EOF ends."""
    turn_index = 0
    for line in sys.stdin if lines is None else lines:
        line = line.strip()
        if not line:
            break
        if line == "/reset":
            chat.reset()
            continue
        is_audio = line.lower().endswith(AUDIO_SUFFIXES) and os.path.isfile(line)
        events = chat.chat_stream(speech=line) if is_audio else chat.chat_stream(text=line)
        run_task(events, stream_dir=stream_dir, as_json=as_json, prefix=f"turn{turn_index:02d}_chunk")
        turn_index += 1


def main(args, options):
    """Run the speech task the (checked) flags ask for."""
    with tempfile.TemporaryDirectory(prefix="vita-jax-demo-") as root:
        if args.demo and not args.json:
            print("making tiny random speech tokenizer and decoder checkpoints ...", flush=True)
        chat = build_pipeline(args, options, root)
        if args.demo and not args.json:
            print(DEMO_BANNER, flush=True)
        if args.interactive:
            return interactive(chat, args.stream_dir, args.json)
        task, text = args.task or "chat", args.text
        if args.demo and task == "chat" and text is None and not args.audio:
            text = "Hello!"  # the demo's default turn
        return run_task(task_events(chat, task, args.audio, text, args.voice), args.out, args.stream_dir, args.json)
