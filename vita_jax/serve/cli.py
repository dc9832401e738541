"""`python -m vita_jax.serve`: load the speech pipeline once, compile it ahead, serve the voice-chat
page, the websocket and the HTTP endpoints (docs/serving.md).

    python -m vita_jax.serve --demo                  # tiny random parts (noise), no download
    python -m vita_jax.serve --checkpoint VITA-Audio-Boost --tokenizer-dir glm-4-voice-tokenizer \\
        --decoder-dir glm-4-voice-decoder [--host 127.0.0.1 --port 8000 --mode turbo]

It binds 127.0.0.1 by default (this machine only). `--host 0.0.0.0` exposes the model, unauthenticated,
to every machine that can reach the port; browsers only give the page the microphone over HTTPS or
on localhost (`--ssl-certfile/--ssl-keyfile`, or an SSH tunnel / TLS reverse proxy)."""

import argparse
import tempfile

from vita_jax.cli import voice
from vita_jax.cli.infer import add_param_dtype_argument, add_sampling_arguments, decoding_options
from vita_jax.serve.background import WS_MAX_BYTES
from vita_jax.serve.service import MODES, Service


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", action="store_true", help="tiny random checkpoints of all three parts, made now")
    parser.add_argument("--checkpoint", help="LLM directory (Hugging Face or vita_jax layout, with its tokenizer)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: this machine only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--ssl-certfile", help="serve HTTPS (needed for the microphone on a non-localhost address)")
    parser.add_argument("--ssl-keyfile")
    parser.add_argument("--mode", default="turbo", choices=MODES, help="default decoding mode")
    parser.add_argument("--modes", help=f"comma-separated modes clients may pick (default: {','.join(MODES)}; "
                                        "--demo: without lossless)")
    parser.add_argument("--warmup-modes", help="modes compiled before serving (default: --mode); others compile "
                                               "on first use")
    parser.add_argument("--warmup-prompt-tokens", type=int, default=2048,
                        help="also compile the LLM programs of every prompt bucket up to this many tokens "
                             "(conversations grow into them; 0: compile each on first use)")
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument("--max-audio-s", type=float, default=30.0, help="longest recording accepted (seconds)")
    add_param_dtype_argument(parser)
    add_sampling_arguments(parser)
    voice.add_speech_part_arguments(parser.add_argument_group("speech parts"))
    parser.add_argument("--log-level", default="info")
    return parser


def parse_modes(parser, text, default):
    if not text:
        return default
    modes = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        parser.error(f"unknown mode(s) {', '.join(unknown) or text!r}; choose among {', '.join(MODES)}")
    return modes


def load_service(args, root, parser=None, log=print):
    """Service from the flags (the --demo parts are written under `root`)."""
    parser = parser or build_parser()
    missing = [] if args.demo else voice.missing_parts(args)
    if missing:
        parser.error(f"give --checkpoint, --tokenizer-dir and --decoder-dir (or --demo) (a VITA-Audio-Plus --checkpoint "
                     f"needs no --tokenizer-dir): missing {', '.join(missing)}")
    voice.check_speech_part_arguments(parser, args)
    offered = parse_modes(parser, args.modes, tuple(m for m in MODES if not (args.demo and m == "lossless")))
    if args.mode not in offered:
        parser.error(f"--mode {args.mode} is not among --modes {','.join(offered)}")
    offered = (args.mode, *(m for m in offered if m != args.mode))  # the first is the default
    warm = parse_modes(parser, args.warmup_modes, (args.mode,))
    if args.demo:
        log("making tiny random checkpoints ...")
    chat = voice.build_pipeline(args, decoding_options(args), root, random_demo=True)
    if args.demo:
        log("--demo: tiny RANDOM checkpoints of all three parts (noise, forced into the Boost text/audio pattern); "
            "point --checkpoint, --tokenizer-dir and --decoder-dir at real ones")
    name = "demo: tiny random parts" if args.demo else f"{args.checkpoint} + {args.speech_tokenizer} + " \
                                                        f"{args.speech_decoder}"
    service = Service(chat, offered, args.max_audio_s, description=name, demo=args.demo)
    log(f"compiling ahead of serving (modes {', '.join(warm)}) ...")
    service.warm_up(warm, log=log, prompt_tokens=args.warmup_prompt_tokens)
    return service


def main(argv=None):
    import uvicorn

    from vita_jax.serve.app import create_app

    parser = build_parser()
    args = parser.parse_args(argv)
    if bool(args.ssl_certfile) != bool(args.ssl_keyfile):
        parser.error("give both --ssl-certfile and --ssl-keyfile")
    with tempfile.TemporaryDirectory(prefix="vita-jax-serve-") as root:
        try:
            service = load_service(args, root, parser)
        except (ValueError, OSError) as error:
            raise SystemExit(f"serve: {error}")
        scheme = "https" if args.ssl_certfile else "http"
        print(f"ready in {service.warmup_s:.1f} s of compiling: {scheme}://{args.host}:{args.port}/", flush=True)
        uvicorn.run(create_app(service), host=args.host, port=args.port, log_level=args.log_level,
                    ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile, ws_max_size=WS_MAX_BYTES)
