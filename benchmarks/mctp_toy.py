"""The MCTP claims at toy scale: module accuracy per depth (text vs audio), agreement of every
decoding mode with Vanilla, lossless acceptance and wall-clock speed-up, ASR / TTS scores.

    python benchmarks/mctp_toy.py                                  # the packaged trained toy
    python benchmarks/mctp_toy.py --checkpoint runs/toy/stage4_sft/final --json toy.json --png toy.png
    python benchmarks/mctp_toy.py --from-json toy.json --png toy.png   # plot only (needs matplotlib, not jax)

`make toy` trains the toy (corpus + the 4 stages through train.py) and runs this. Held-out prompts
are regenerated from the corpus seed and never appear in training (vita_jax/data/toy_corpus.py).
Decoding is greedy, batch 1, every prompt compiled-then-timed; speeds are wall time of the timed pass.
"""

import argparse
import json


def measure(args):
    from vita_jax.toy.evaluate import MODES, TOY_CHECKPOINT, compare_modes, heldout_records, load_toy, module_accuracy, \
        params_digest
    from vita_jax.toy.forward_costs import bounds, step_costs

    model, tokenizer = load_toy(args.checkpoint or TOY_CHECKPOINT)
    accuracy = module_accuracy(model, tokenizer, heldout_records(args.accuracy_samples))
    decode_records = heldout_records(args.decode_prompts, tasks=("tts", "spoken_chat", "asr"))
    modes = (*MODES, *(f"lossless:{n}" for n in args.lossless_drafts))
    report = compare_modes(model, tokenizer, decode_records, modes=modes, max_new_tokens=args.max_new_tokens)
    report["module_accuracy"] = {**accuracy, "samples": args.accuracy_samples}
    costs = step_costs(model)
    report["step_costs_us"] = {kind: {str(c): us for c, us in by_chunk.items()} for kind, by_chunk in costs.items()}
    report["best_case"] = bounds(costs, model.config.num_mctp_modules, report["lossless"]["mean_accepted_drafts"])
    report["checkpoint"] = args.checkpoint or TOY_CHECKPOINT
    report["params_sha256"] = params_digest(model.params)
    return report


def print_table(report):
    acc = report["module_accuracy"]
    print(f"module accuracy (teacher forced, {acc['audio_targets']} audio / {acc['text_targets']} text targets; "
          f"depth k predicts the token k+1 ahead; backbone = depth 0):")
    print(f"  {'depth':>5} {'audio':>7} {'text':>7}")
    print(f"  {0:>5} {acc['backbone']['audio']:7.3f} {acc['backbone']['text']:7.3f}  (backbone)")
    for k, (a, t) in enumerate(zip(acc["audio"], acc["text"]), 1):
        print(f"  {k:>5} {a:7.3f} {t:7.3f}")
    print(f"  trivial baselines on audio, next token: most frequent code {acc['baseline_most_frequent_code']:.3f}, "
          f"copy previous {acc['baseline_copy_previous']:.3f}")
    print(f"\ndecoding {report['prompts']} held-out prompts, greedy, batch 1 (max {report['max_new_tokens']} tokens):")
    print(f"  {'mode':>9} {'tokens/s':>9} {'speed-up':>9} {'fwd':>6} {'agree audio':>12} {'agree text':>11} "
          f"{'aligned audio':>14} {'aligned text':>13} {'exact':>6} {'1st diff audio/text':>20}")
    for mode, e in report["modes"].items():
        g = e["agreement"]
        first = g["first_divergence"]
        print(f"  {mode:>9} {e['tokens_per_s']:9.1f} {e['speedup']:8.2f}x {e['backbone_forwards']:6d} "
              f"{g['audio']:12.3f} {g['text']:11.3f} {g['audio_aligned']:14.3f} {g['text_aligned']:13.3f} "
              f"{g['exact']:6.2f} {first['audio']:>12d} / {first['text']}")
    print("  agree: position by position; aligned: tokens of Vanilla's answer kept in a longest common "
          "subsequence; 1st diff: answers whose first token differing from Vanilla's is an audio / a text token")
    for mode in report["modes"]:
        if mode.startswith("lossless"):
            ll = report[mode]
            print(f"  {mode}: {ll['mean_accepted_drafts']:.2f} drafts accepted per backbone forward; acceptance by "
                  f"depth {', '.join(f'{a:.2f}' for a in ll['acceptance'])}; identical to vanilla: "
                  f"{ll['identical_to_vanilla']}")
    print("  audio agreement with vanilla by task: " + "; ".join(
        f"{mode} " + ", ".join(f"{task} {g['audio']:.3f}" for task, g in e.get("agreement_by_task", {}).items()
                         if g["audio"] is not None)
        for mode, e in report["modes"].items() if mode != "vanilla"))
    if "step_costs_us" in report:
        costs, best = report["step_costs_us"], report["best_case"]
        print("\none step inside the compiled loop (forward + emit), microseconds by chunk of new tokens: "
              + "; ".join(f"{kind} " + ", ".join(f"C={c}: {us:.0f}" for c, us in by_chunk.items())
                          for kind, by_chunk in costs.items()))
        print(f"  best case from these alone (no prefill, no overhead): turbo {best['turbo_best_speedup']:.2f}x, "
              f"lossless {best.get('lossless_best_speedup', float('nan')):.2f}x over vanilla "
              f"({best['vanilla_us_per_token']:.0f} us/token)")
    truth = report["vanilla_vs_truth"]
    print(f"\nvanilla vs the true answers: audio tokens {truth['audio']:.3f}, text tokens {truth['text']:.3f}, "
          f"exact {truth['exact']:.2f}")
    for task, s in report["tasks"].items():
        extra = f", WER {s['wer']:.3f}" if "wer" in s else f", code accuracy {s['code_accuracy']:.3f}"
        print(f"  {task}: {s['count']} prompts, text exact match {s['text_exact']:.2f}{extra}")


def plot(report, path):
    """Accuracy vs depth (audio, text) and tokens/s per mode, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    acc = report["module_accuracy"]
    depths = range(1, len(acc["audio"]) + 1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(depths, acc["audio"], "o-", label="audio positions")
    left.plot(depths, acc["text"], "s-", label="text positions")
    if "lossless" in report:  # the modules reading their own drafts, against the backbone's tokens
        left.plot(depths, report["lossless"]["acceptance"], "^--", label="lossless draft acceptance")
    left.axhline(acc["baseline_most_frequent_code"], ls=":", c="gray", label="most frequent code")
    left.set(xlabel="module depth k (predicts the token k+1 ahead)", ylabel="top-1 accuracy", ylim=(0, 1.02),
             title="MCTP module accuracy (held out)")
    left.legend()
    modes = list(report["modes"])
    right.bar(modes, [report["modes"][m]["tokens_per_s"] for m in modes])
    right.set(ylabel="tokens/s (batch 1, greedy)", title="decoding speed per mode")
    right.tick_params(axis="x", labelrotation=30)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="a toy checkpoint (default: the packaged trained toy)")
    parser.add_argument("--accuracy-samples", type=int, default=128, help="held-out records for module accuracy")
    parser.add_argument("--decode-prompts", type=int, default=12, help="held-out prompts decoded in every mode")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--lossless-drafts", type=lambda v: [int(n) for n in v.split(",") if n], default=[2, 4],
                        help="also decode in lossless mode with these numbers of drafts (comma list; '' for none)")
    parser.add_argument("--json", help="write the report here")
    parser.add_argument("--png", help="write the plot here (matplotlib)")
    parser.add_argument("--from-json", help="print and plot a saved report instead of measuring")
    args = parser.parse_args(argv)
    if args.from_json:
        with open(args.from_json) as f:
            report = json.load(f)
    else:
        report = measure(args)
    print_table(report)
    if "params_sha256" in report:
        print(f"parameters sha256 {report['params_sha256']} ({report['checkpoint']})")
    if args.json:
        from vita_jax.atomic import atomic_file

        with atomic_file(args.json, "w", replaceable=lambda _: True) as f:
            json.dump(report, f, indent=1)
    if args.png:
        plot(report, args.png)
        print(f"plot written to {args.png}")


if __name__ == "__main__":
    main()
