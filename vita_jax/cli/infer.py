"""Inference: speech in, speech out (spoken chat, ASR, TTS), or interleaved tokens from an LLM alone.

    python infer.py --demo                                          # the built-in trained toy, every mode
    python infer.py --demo --audio question.wav                     # speech in/out: toy LLM, tiny random speech parts
    python infer.py --checkpoint LLM --speech-tokenizer TOK --speech-decoder DEC --audio q.wav --out a.wav
    python infer.py ... --task asr --audio q.wav | --task tts --text "Hi" [--voice ref.wav]
    python infer.py ... --interactive                               # multi-turn, stdin: text or wav paths
    python infer.py --checkpoint DIR --mode turbo --prompt "Hello"  # token mode: ChatML, streamed text
    python infer.py --checkpoint DIR --input-ids 1,2,3 --json       # token mode: raw ids

Modes: vanilla, balance, boost, turbo, lossless, or a list such as 1,10 or 1,4,3,8,4,10.
Prints the streamed text, the number of audio codes in every chunk (one per <|end_of_audio|>),
and timings (compile, first token, first audio chunk, tokens/s).
"""

import json
import time

import vita_jax
from vita_jax import vocabulary
from vita_jax.cli import voice
from vita_jax.decode import AudioChunkEvent, EndEvent, TextEvent
from vita_jax.cli.errors import CommandParser, UsageError, command, positive_int
from vita_jax.cli.progress import progress_line
from vita_jax.decode.decoder import compile_ahead, prepare
from vita_jax.param_storage import PARAM_DTYPES


def chat_prompt(prompt, system=None):
    """ChatML with the assistant's generation prompt (spec section 2; no default system message)."""
    turns = ([("system", system)] if system else []) + [("user", prompt)]
    return "".join(f"<|im_start|>{role}\n{content}<|im_end|>\n" for role, content in turns) + "<|im_start|>assistant\n"


def parse_mode(text):
    """'turbo' -> 'turbo'; '1,10' -> [1, 10]; 'inf,0' -> ['inf', 0]."""
    if "," not in text:
        from vita_jax.decode.schedule import LOSSLESS, PRESETS

        if text.strip().lower() not in (*PRESETS, LOSSLESS):
            raise UsageError(f"--mode {text!r}: choose one of {', '.join([*PRESETS, LOSSLESS])} or a list like 1,10")
        return text
    try:
        return [part.strip() if part.strip() == "inf" else int(part) for part in text.split(",")]
    except ValueError:
        raise UsageError(f"--mode {text!r}: a list must hold integers (or inf), e.g. 1,10 or 1,4,3,8,4,10") from None


def parse_input_ids(text):
    """'1,2,3' -> [[1, 2, 3]]."""
    try:
        return [[int(t) for t in text.split(",")]]
    except ValueError:
        raise UsageError(f"--input-ids {text!r}: give comma-separated integer token ids, e.g. 1,2,3") from None


def check_text(flag, text):
    """A flag's text must be encodable (the shell may pass bytes that are not UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"{flag} is not valid UTF-8 text") from None


def run(model, input_ids, options, tokenizer=None, stream_options=None, echo=True):
    """Compile, then stream one generation. Returns a report dict (ids, text, chunks, timings)."""
    start = time.perf_counter()
    with progress_line(f"compiling {options['mode']} decoding (can take a minute)"):
        executable = compile_ahead(model, prepare(model, input_ids, **options))
    compile_s = time.perf_counter() - start
    report = {"mode": options["mode"], "compile_s": compile_s, "token_ids": [], "text": "", "audio_chunks": [],
              "first_token_s": None, "first_audio_chunk_s": None}
    start = time.perf_counter()
    for event in model.stream(input_ids, tokenizer=tokenizer, executable=executable, **options,
                              **(stream_options or {})):
        now = time.perf_counter() - start
        if isinstance(event, TextEvent):
            report["first_token_s"] = report["first_token_s"] or now
            report["token_ids"] += event.token_ids
            report["text"] += event.text or ""
            if echo:
                print(event.text if tokenizer else f"{list(event.token_ids)} ", end="", flush=True)
        elif isinstance(event, AudioChunkEvent):
            report["first_audio_chunk_s"] = report["first_audio_chunk_s"] or now
            report["audio_chunks"].append(len(event.codes))
            if echo:
                print(f"[audio chunk {event.index}: {len(event.codes)} codes at {1e3 * now:.0f} ms] ", end="",
                      flush=True)
        elif isinstance(event, EndEvent):
            report.update(stop_reason=event.reason, num_tokens=event.num_tokens)
    report["total_s"] = time.perf_counter() - start
    report["tokens_per_s"] = report.get("num_tokens", 0) / report["total_s"]
    if echo:
        print()
    return report


def print_timings(report):
    first_chunk = report["first_audio_chunk_s"]
    print(f"{report['mode']}: {report.get('num_tokens', 0)} tokens ({report.get('stop_reason', 'stopped')}), "
          f"audio chunks {report['audio_chunks']} codes; compile {report['compile_s']:.2f} s, first token "
          f"{1e3 * report['first_token_s']:.1f} ms, first audio chunk "
          f"{'-' if first_chunk is None else f'{1e3 * first_chunk:.1f} ms'}, "
          f"{report['tokens_per_s']:.1f} tokens/s")


def build_parser():
    parser = CommandParser(description=__doc__)
    parser.add_argument("--demo", action="store_true",
                        help="the built-in trained toy decoded in every mode; with speech flags, the speech path on "
                             "the toy LLM and tiny random speech tokenizer and decoder")
    parser.add_argument("--checkpoint", help="LLM: Hugging Face or vita_jax checkpoint directory (with its tokenizer)")
    parser.add_argument("--prompt", help="user message (the chat template is applied)")
    parser.add_argument("--system", help="optional system message")
    parser.add_argument("--input-ids", help="comma-separated token ids, e.g. 1,2,3 (no template)")
    parser.add_argument("--mode", default="turbo", help="vanilla|balance|boost|turbo|lossless or a list like 1,10")
    parser.add_argument("--max-new-tokens", type=positive_int, default=256)
    add_param_dtype_argument(parser)
    add_sampling_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the stream")
    voice.add_arguments(parser)
    return parser


def add_param_dtype_argument(parser):
    """--param-dtype: the LLM's storage dtype (compute stays float32)."""
    parser.add_argument("--param-dtype", choices=PARAM_DTYPES, default=None,
                        help="store the LLM's weights in this dtype (default: as the checkpoint stores them, bfloat16 "
                             "for the released ones). On CPU, where XLA converts most bfloat16 weights slowly, float32 "
                             "decodes 1.5-2.7x faster for twice the memory, and mixed (float32, but the lm_head kept "
                             "bfloat16: the same values for a bfloat16 checkpoint) faster still "
                             "(docs/speech-pipeline.md)")


def add_sampling_arguments(parser):
    """The sampling flags that `decoding_options` reads (greedy unless --sample)."""
    parser.add_argument("--sample", action="store_true", help="sample (default: greedy)")
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--top-k", type=int, default=20)
    parser.add_argument("--top-p", type=float, default=0.8)
    parser.add_argument("--repetition-penalty", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)


def decoding_options(args):
    """The options of `generate` the flags give."""
    options = {"mode": parse_mode(args.mode), "max_new_tokens": args.max_new_tokens}
    if args.sample:
        options.update(do_sample=True, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed)
    if args.repetition_penalty != 1.0:
        options["repetition_penalty"] = args.repetition_penalty
    return options


@command
def main(argv):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.demo and not voice.speech_task_flags(args):
        if args.prompt is not None or args.input_ids is not None or args.checkpoint:
            parser.error("--demo uses the built-in toy: no --checkpoint, --prompt or --input-ids")
        from vita_jax.cli import toy_demo

        toy_demo.main(max_new_tokens=min(args.max_new_tokens, 128))
        return 0
    if voice.wants_speech(args):
        voice.check_arguments(parser, args)
        voice.main(args, decoding_options(args))  # returns the turn's end event, not a status
        return 0
    if not args.checkpoint or (args.prompt is None) == (args.input_ids is None):
        parser.error("give --demo, speech flags (--audio, --text, --task ...), or --checkpoint DIR with exactly "
                     "one of --prompt TEXT / --input-ids 1,2,3")
    for flag, text in (("--prompt", args.prompt), ("--system", args.system)):
        if text is not None:
            check_text(flag, text)
    input_ids = parse_input_ids(args.input_ids) if args.input_ids is not None else None
    return token_mode(args, input_ids, decoding_options(args))


def token_mode(args, input_ids, options):
    """Stream the LLM's tokens for --prompt (chat template applied) or raw --input-ids."""
    model = vita_jax.load_pretrained(args.checkpoint, param_dtype=args.param_dtype, progress=not args.json)
    tokenizer = None
    if args.prompt is not None or model.config.vocab_size == vocabulary.PADDED_VOCAB_SIZE:
        from transformers import AutoTokenizer

        source = model.side_files_dir or args.checkpoint
        try:
            tokenizer = AutoTokenizer.from_pretrained(source)
        except (OSError, ValueError) as error:
            if args.prompt is not None:
                raise ValueError(f"--prompt needs a tokenizer and {args.checkpoint} has none (train.py saves one with "
                                 "every export; copy the base model's tokenizer files there, or give --input-ids)"
                                 ) from error
    if args.prompt is not None:
        input_ids = [tokenizer.encode(chat_prompt(args.prompt, args.system), add_special_tokens=False)]
    report = run(model, input_ids, options, tokenizer=tokenizer, echo=not args.json)
    if args.json:
        print(json.dumps(report))
    else:
        print_timings(report)


if __name__ == "__main__":
    main()
