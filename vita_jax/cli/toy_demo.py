"""`infer.py --demo` without speech flags: the packaged trained toy (docs/toy-mctp.md) decodes a few
held-out prompts in every mode; prints the answers side by side, their agreement with Vanilla,
the speed-ups and the lossless mode's acceptance."""

from vita_jax.toy.evaluate import MODES, TOY_CHECKPOINT, compare_modes, heldout_records, load_toy, split_answer

BANNER = ("--demo: the built-in TRAINED TOY ({path}): a {layers}-layer, K={modules} VITA-Audio model trained in "
          "minutes on this CPU through the 4-stage curriculum on a synthetic spoken language (make toy rebuilds it). "
          "Prompts are held out from its training. Greedy decoding, batch 1; speeds exclude compilation.")


def show_answer(tokenizer, answer, width=18):
    text, codes = split_answer(tokenizer, answer)
    shown = " ".join(map(str, codes[:width])) + (" ..." if len(codes) > width else "")
    return f"{text!r} + {len(codes)} codes [{shown}]"


def main(max_new_tokens=128, prompts=3):
    model, tokenizer = load_toy()
    print(BANNER.format(path=TOY_CHECKPOINT, layers=model.config.num_layers, modules=model.config.num_mctp_modules),
          flush=True)
    records = heldout_records(prompts, tasks=("tts", "spoken_chat"))
    print(f"compiling and decoding {len(records)} held-out prompts in {len(MODES)} modes ...", flush=True)
    report = compare_modes(model, tokenizer, records, max_new_tokens=max_new_tokens)
    for i, record in enumerate(records):
        user = record["messages"][-2]["content"].replace("\n", " ")
        print(f"\nprompt {i + 1}: user {user!r}; true answer {record['messages'][-1]['content']!r}")
        for mode in MODES:
            print(f"  {mode:>9}: {show_answer(tokenizer, report['modes'][mode]['answers'][i])}")
    print(f"\n{'mode':>9} {'tokens/s':>9} {'speed-up':>9} {'agree audio':>12} {'agree text':>11} {'same answer':>12}")
    for mode in MODES:
        entry = report["modes"][mode]
        g = entry["agreement"]
        print(f"{mode:>9} {entry['tokens_per_s']:9.1f} {entry['speedup']:8.2f}x {g['audio']:12.3f} {g['text']:11.3f} "
              f"{g['exact']:12.2f}")
    lossless = report["lossless"]
    print(f"lossless: {lossless['mean_accepted_drafts']:.2f} drafted tokens accepted per backbone forward (by depth: "
          f"{', '.join(f'{a:.2f}' for a in lossless['acceptance'])}); output identical to vanilla: "
          f"{lossless['identical_to_vanilla']}")
    print("full figures: python benchmarks/mctp_toy.py; speech in/out on the toy: infer.py --demo --audio q.wav")
    return report
