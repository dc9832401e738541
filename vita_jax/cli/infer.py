"""Inference: speech in, speech out (spoken chat, ASR, TTS), or interleaved tokens from an LLM alone.

    python infer.py --demo [--audio question.wav]                   # tiny random parts, no download
    python infer.py --checkpoint LLM --speech-tokenizer TOK --speech-decoder DEC --audio q.wav --out a.wav
    python infer.py ... --task asr --audio q.wav | --task tts --text "Hi" [--voice ref.wav]
    python infer.py ... --interactive                               # multi-turn, stdin: text or wav paths
    python infer.py --checkpoint DIR --mode turbo --prompt "Hello"  # token mode: ChatML, streamed text
    python infer.py --checkpoint DIR --input-ids 1,2,3 --json       # token mode: raw ids

Modes: vanilla, balance, boost, turbo, lossless, or a list such as 1,10 or 1,4,3,8,4,10.
Prints the streamed text, the number of audio codes in every chunk (one per <|end_of_audio|>),
and timings (compile, first token, first audio chunk, tokens/s).
"""

import argparse
import json
import time

import vita_jax
from vita_jax import vocabulary
from vita_jax.cli import voice
from vita_jax.decode import AudioChunkEvent, EndEvent, TextEvent
from vita_jax.decode.decoder import compile_ahead, prepare


def chat_prompt(prompt, system=None):
    """ChatML with the assistant's generation prompt (spec section 2; no default system message)."""
    turns = ([("system", system)] if system else []) + [("user", prompt)]
    return "".join(f"<|im_start|>{role}\n{content}<|im_end|>\n" for role, content in turns) + "<|im_start|>assistant\n"


def parse_mode(text):
    """'turbo' -> 'turbo'; '1,10' -> [1, 10]; 'inf,0' -> ['inf', 0]."""
    if "," not in text:
        return text
    return [part.strip() if part.strip() == "inf" else int(part) for part in text.split(",")]


def run(model, input_ids, options, tokenizer=None, stream_options=None, echo=True):
    """Compile, then stream one generation. Returns a report dict (ids, text, chunks, timings)."""
    start = time.perf_counter()
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
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", action="store_true",
                        help="the speech path on tiny random checkpoints of all three parts, made on the fly")
    parser.add_argument("--checkpoint", help="LLM: Hugging Face or vita_jax checkpoint directory (with its tokenizer)")
    parser.add_argument("--prompt", help="user message (the chat template is applied)")
    parser.add_argument("--system", help="optional system message")
    parser.add_argument("--input-ids", help="comma-separated token ids, e.g. 1,2,3 (no template)")
    parser.add_argument("--mode", default="turbo", help="vanilla|balance|boost|turbo|lossless or a list like 1,10")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--sample", action="store_true", help="sample (default: greedy)")
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--top-k", type=int, default=20)
    parser.add_argument("--top-p", type=float, default=0.8)
    parser.add_argument("--repetition-penalty", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the stream")
    voice.add_arguments(parser)
    return parser


def decoding_options(args):
    """The options of `generate` the flags give."""
    options = {"mode": parse_mode(args.mode), "max_new_tokens": args.max_new_tokens}
    if args.sample:
        options.update(do_sample=True, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed)
    if args.repetition_penalty != 1.0:
        options["repetition_penalty"] = args.repetition_penalty
    return options


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if voice.wants_speech(args):
        voice.check_arguments(parser, args)
        try:
            return voice.main(args, decoding_options(args))
        except (ValueError, OSError) as error:  # bad input, a missing part, a prompt over the cache: one line
            raise SystemExit(f"infer: {error}")
    if not args.checkpoint or (args.prompt is None) == (args.input_ids is None):
        parser.error("give --demo, speech flags (--audio, --text, --task ...), or --checkpoint DIR with exactly "
                     "one of --prompt TEXT / --input-ids 1,2,3")
    return token_mode(args)


def token_mode(args):
    """Stream the LLM's tokens for --prompt (chat template applied) or raw --input-ids."""
    model = vita_jax.load_pretrained(args.checkpoint, progress=not args.json)
    tokenizer = None
    if args.prompt is not None or model.config.vocab_size == vocabulary.PADDED_VOCAB_SIZE:
        from transformers import AutoTokenizer

        source = model.side_files_dir or args.checkpoint
        try:
            tokenizer = AutoTokenizer.from_pretrained(source)
        except (OSError, ValueError) as error:
            if args.prompt is not None:
                raise SystemExit(f"--prompt needs a tokenizer in {source}: {error}")
    if args.prompt is not None:
        input_ids = [tokenizer.encode(chat_prompt(args.prompt, args.system), add_special_tokens=False)]
    else:
        input_ids = [[int(t) for t in args.input_ids.split(",")]]
    options = decoding_options(args)
    report = run(model, input_ids, options, tokenizer=tokenizer, echo=not args.json)
    if args.json:
        print(json.dumps(report))
    else:
        print_timings(report)


if __name__ == "__main__":
    main()
