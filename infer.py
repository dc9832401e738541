"""Inference entry point.

    python infer.py --demo     # built-in tiny default: random qwen2_mtp checkpoint -> import -> forward

Interleaved text+audio decoding (Vanilla/Balance/Boost/Turbo) is not implemented yet; until it
lands this script only runs the forward pass of a checkpoint.
"""

import argparse
import os
import tempfile
import time

import numpy as np

import vita_jax
from configs.model import get_config


def run_forward(model, input_ids):
    """Forward `input_ids` once (compile) and again (timed); print what each head predicts."""
    start = time.perf_counter()
    out = model.forward(input_ids)
    out.logits.block_until_ready()
    compiled = time.perf_counter()
    out = model.forward(input_ids)
    out.logits.block_until_ready()
    done = time.perf_counter()
    print(f"forward [B, T] = {list(input_ids.shape)}: compile+run {compiled - start:.2f}s, run {done - compiled:.3f}s")
    print(f"backbone next-token predictions: {np.asarray(out.logits.argmax(-1))[0].tolist()}")
    for k, logits in enumerate(out.mctp_logits):
        pairs = input_ids.shape[1] - k - 1
        print(f"MCTP module {k} predictions (pairs 0..{pairs - 1}): {np.asarray(logits.argmax(-1))[0, :pairs].tolist()}")


def demo():
    """Random tiny qwen2_mtp model -> Hugging Face layout -> import -> forward."""
    config = get_config("tiny")
    with tempfile.TemporaryDirectory() as tmp:
        hf_dir = os.path.join(tmp, "tiny-qwen2-mtp")
        vita_jax.VitaAudioModel.random(config, seed=0).save_pretrained(hf_dir, dtype="float32")
        print(f"wrote a random tiny qwen2_mtp checkpoint ({config.num_layers} layers, "
              f"K={config.num_mctp_modules}) to {hf_dir}: {sorted(os.listdir(hf_dir))}")
        model = vita_jax.load_pretrained(hf_dir, progress=False)
    input_ids = np.random.default_rng(0).integers(0, config.vocab_size, (1, 12)).astype(np.int32)
    run_forward(model, input_ids)
    print("interleaved decoding: not implemented yet (forward pass only)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", action="store_true", help="run on a built-in tiny random checkpoint")
    parser.add_argument("--checkpoint", help="Hugging Face or vita_jax checkpoint directory")
    parser.add_argument("--input-ids", help="comma-separated token ids, e.g. 1,2,3")
    args = parser.parse_args(argv)
    if args.demo:
        demo()
    elif args.checkpoint and args.input_ids:
        ids = np.array([[int(t) for t in args.input_ids.split(",")]], np.int32)
        run_forward(vita_jax.load_pretrained(args.checkpoint), ids)
    else:
        parser.error("give --demo, or --checkpoint DIR with --input-ids 1,2,3")


if __name__ == "__main__":
    main()
