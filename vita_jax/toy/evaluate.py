"""Figures of a trained toy model on held-out toy prompts (docs/toy-mctp.md).

    model, tokenizer = load_toy(path)                 # default: the packaged trained toy
    records = heldout_records(64)                      # regenerated from the corpus seed, never trained on
    module_accuracy(model, tokenizer, records)         # teacher-forced accuracy per depth, text vs audio
    compare_modes(model, tokenizer, records)           # every decoding mode vs Vanilla, ASR / TTS scores

Every special id is read from the checkpoint's tokenizer by string (VocabIds.of).
"""

import concurrent.futures
import os
import time

import numpy as np

from vita_jax.data.chat_template import IGNORE, render
from vita_jax.data.interleave import parse_ratios
from vita_jax.data.tokenizer import END_OF_TEXT, VocabIds, extend_tokenizer
from vita_jax.data.toy_corpus import generate

TOY_CHECKPOINT = os.path.join(os.path.dirname(__file__), "checkpoint")  # the committed trained toy
MODES = ("vanilla", "boost", "balance", "turbo", "lossless")


def load_toy(path=TOY_CHECKPOINT):
    """(model, extended tokenizer) of a toy checkpoint carrying its tokenizer (hf_files)."""
    from vita_jax.model import load_pretrained

    if path == TOY_CHECKPOINT and not os.path.isdir(path):
        raise FileNotFoundError(f"the built-in trained toy is missing ({path}): run `make toy` to build it")
    model = load_pretrained(path, progress=False)
    if model.side_files_dir is None:
        raise FileNotFoundError(f"{path}: no tokenizer files (hf_files/) beside the toy's parameters")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model.side_files_dir)  # saved extended by train.py
    return model, extend_tokenizer(tokenizer, len(tokenizer) - tokenizer.convert_tokens_to_ids("<|audio_0|>"),
                                   source=model.side_files_dir)


def params_digest(params):
    """sha256 over every parameter's path and float bytes: equal digests = bit-identical weights
    (the checkpoint files themselves carry timestamps)."""
    import hashlib

    import jax

    digest = hashlib.sha256()
    for path, leaf in sorted(jax.tree_util.tree_flatten_with_path(params)[0], key=lambda item: str(item[0])):
        digest.update(str(path).encode())
        digest.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
    return digest.hexdigest()


def heldout_records(count, seed=0, tasks=None):
    """`count` held-out records, regenerated deterministically: the first ones of the held-out split,
    or with `tasks` the first of each task in turn (tasks[0], tasks[1], ..., tasks[0], ...)."""
    records, _ = generate(max(8 * count, 64), seed, heldout=True)
    if tasks is None:
        return records[:count]
    by_task = [[r for r in records if task_of(r) == task] for task in tasks]
    turns = [group[i] for i in range(count) for group in by_task if i < len(group)]
    return turns[:count]


def task_of(record):
    messages = record["messages"]
    if messages[0]["role"] == "system":
        return "spoken_chat"
    if messages[0]["content"].startswith("Convert the text"):
        return "tts"
    return "asr" if record["audios"] else "text_chat"


def encode(tokenizer, record, ratios="boost"):
    """(input_ids, labels) of a whole record, as training renders it."""
    return render(record["messages"], record.get("audio_codes", []), tokenizer, VocabIds.of(tokenizer),
                  parse_ratios(ratios))


def prompt_and_answer(tokenizer, record):
    """(prompt ids ending with the assistant generation prompt, the true answer ids up to <|im_end|>)."""
    ids, labels = encode(tokenizer, record)
    start = next(i for i, label in enumerate(labels) if label != IGNORE)
    return ids[:start], ids[start:len(ids) - 1]  # drop the trailing newline after <|im_end|>


def module_accuracy(model, tokenizer, records, batch=16):
    """Teacher-forced top-1 accuracy of the backbone (depth 0, next token) and of module k
    (depth k = 1..K, the token k+1 ahead), on the answer tokens, split by audio / text targets.
    Also two trivial baselines on audio targets at depth 1 (the next token): the most frequent
    code and copying the previous token. Returns a dict of lists over depth."""
    ids = VocabIds.of(tokenizer)
    depth_count = model.config.num_mctp_modules + 1
    hits = {"audio": np.zeros(depth_count), "text": np.zeros(depth_count)}
    totals = {"audio": np.zeros(depth_count), "text": np.zeros(depth_count)}
    all_targets, copy_hits = [], 0
    for start in range(0, len(records), batch):
        encoded = [encode(tokenizer, r) for r in records[start:start + batch]]
        length = max(len(i) for i, _ in encoded)
        input_ids = np.zeros((len(encoded), length), np.int32)
        labels = np.full((len(encoded), length), IGNORE, np.int64)
        for row, (i, lab) in enumerate(encoded):
            input_ids[row, :len(i)], labels[row, :len(lab)] = i, lab
        out = model.forward(input_ids)
        heads = [out.logits, *out.mctp_logits]
        for depth, logits in enumerate(heads):
            predicted = np.asarray(logits.argmax(-1))
            offset = depth + 1
            target = labels[:, offset:]
            guess = predicted[:, :length - offset]
            valid = target != IGNORE
            is_audio = ids.is_audio(target)
            for kind, mask in (("audio", valid & is_audio), ("text", valid & ~is_audio)):
                hits[kind][depth] += (guess == target)[mask].sum()
                totals[kind][depth] += mask.sum()
        target, previous = labels[:, 1:], input_ids[:, :-1]
        audio = ids.is_audio(target)
        all_targets += list(target[audio])
        copy_hits += int((previous == target)[audio].sum())
    accuracy = {kind: (hits[kind] / np.maximum(totals[kind], 1)).tolist() for kind in hits}
    counts = np.bincount(np.asarray(all_targets) - ids.audio_offset, minlength=ids.num_audio_codes)
    return {"backbone": {kind: accuracy[kind][0] for kind in accuracy},
            "audio": accuracy["audio"][1:], "text": accuracy["text"][1:],
            "audio_targets": int(totals["audio"][1]), "text_targets": int(totals["text"][1]),
            "baseline_most_frequent_code": float(counts.max() / max(counts.sum(), 1)),
            "baseline_copy_previous": copy_hits / max(len(all_targets), 1)}


def decode_options(mode, eos_ids, max_new_tokens):
    """`decode`'s options for a benchmark mode name ("lossless:N": lossless with N drafts)."""
    options = dict(mode=mode, max_new_tokens=max_new_tokens, eos_token_ids=eos_ids)
    if mode.startswith("lossless:"):
        options.update(mode="lossless", num_draft=int(mode.split(":")[1]))
    return options


def compile_modes(model, prompts, modes, eos_ids, max_new_tokens):
    """Decode every prompt once in every mode, modes side by side on the machine's cores: this
    compiles each (mode, prompt bucket) program, and XLA compiles with the GIL released."""
    from vita_jax.decode.decoder import decode

    def run(mode):
        for prompt in prompts:
            decode(model, [prompt], **decode_options(mode, eos_ids, max_new_tokens))

    with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        list(pool.map(run, modes))


def decode_all(model, prompts, mode, eos_ids, max_new_tokens):
    """Each prompt decoded alone (batch 1, greedy; programs compiled already, see compile_modes):
    (answers, wall seconds, backbone forwards, lossless acceptance per depth or None)."""
    from vita_jax.decode.decoder import decode

    options = decode_options(mode, eos_ids, max_new_tokens)
    answers, forwards, accepted, rounds = [], 0, None, 0
    start = time.perf_counter()
    for prompt in prompts:
        result = decode(model, [prompt], **options)
        answers.append([int(t) for t in result.sequences[0, :int(result.num_tokens[0])]])
        forwards += result.backbone_forwards
        if result.acceptance is not None:
            # acceptance[k]: fraction of this prompt's draft rounds that kept draft k; every backbone
            # forward after the prefill is one draft-and-verify round
            prompt_rounds = result.backbone_forwards - 1
            weighted = np.asarray(result.acceptance) * prompt_rounds
            accepted = weighted if accepted is None else accepted + weighted
            rounds += prompt_rounds
    seconds = time.perf_counter() - start
    acceptance = None if accepted is None else (accepted / max(rounds, 1)).tolist()
    return answers, seconds, forwards, acceptance


def agreement(answers, reference, ids):
    """Agreement with the reference answers, on the reference's audio and text tokens (None where
    the references hold none):
      audio / text            position by position (one inserted or dropped token shifts the rest);
      audio_aligned / ..._aligned  reference tokens matched by a longest common subsequence of the
                              two answers (what is still right after such a shift);
      first_divergence        answers whose first differing token is, in the reference, an audio
                              or a text token ("length": one is a prefix of the other);
      exact                   the fraction of whole answers identical to the reference."""
    same, aligned = {"audio": [0, 0], "text": [0, 0]}, {"audio": 0, "text": 0}
    first = {"audio": 0, "text": 0, "length": 0}
    for answer, ref in zip(answers, reference):
        for i, token in enumerate(ref):
            kind = "audio" if ids.is_audio(token) else "text"
            same[kind][0] += int(i < len(answer) and answer[i] == token)
            same[kind][1] += 1
        for token in common_subsequence(answer, ref):
            aligned["audio" if ids.is_audio(token) else "text"] += 1
        differ = next((i for i, (a, r) in enumerate(zip(answer, ref)) if a != r), None)
        if differ is not None:
            first["audio" if ids.is_audio(ref[differ]) else "text"] += 1
        elif len(answer) != len(ref):
            first["length"] += 1
    report = {kind: hits / count if count else None for kind, (hits, count) in same.items()}
    report.update({f"{kind}_aligned": aligned[kind] / same[kind][1] if same[kind][1] else None for kind in aligned})
    return {**report, "first_divergence": first,
            "exact": float(np.mean([a == r for a, r in zip(answers, reference)]))}


def common_subsequence(a, b):
    """A longest common subsequence of two token lists (dynamic programming, O(len(a) * len(b)))."""
    table = np.zeros((len(a) + 1, len(b) + 1), np.int32)
    for i in range(len(a) - 1, -1, -1):
        for j in range(len(b) - 1, -1, -1):
            table[i, j] = table[i + 1, j + 1] + 1 if a[i] == b[j] else max(table[i + 1, j], table[i, j + 1])
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        if a[i] == b[j]:
            out.append(a[i])
            i, j = i + 1, j + 1
        elif table[i + 1, j] >= table[i, j + 1]:
            i += 1
        else:
            j += 1
    return out


def split_answer(tokenizer, answer):
    """(text, audio codes) of generated ids (specials dropped)."""
    ids = VocabIds.of(tokenizer)
    codes = [t - ids.audio_offset for t in answer if ids.is_audio(t)]
    text_ids = [t for t in answer if t < ids.begin_of_audio - 9 and t not in (ids.im_end, ids.im_start)]
    return tokenizer.decode(text_ids, skip_special_tokens=True).strip(), codes


def word_error_rate(hypothesis, reference):
    h, r = hypothesis.split(), reference.split()
    d = np.arange(len(h) + 1)
    for i, word in enumerate(r, 1):
        previous, d[0] = d.copy(), i
        for j, guess in enumerate(h, 1):
            d[j] = min(previous[j] + 1, d[j - 1] + 1, previous[j - 1] + (word != guess))
    return d[len(h)] / max(len(r), 1)


def compare_modes(model, tokenizer, records, modes=MODES, max_new_tokens=128):
    """Decode every record's prompt in every mode; report agreement with Vanilla, speed, lossless
    acceptance, and the task scores of Vanilla's answers (ASR exact match / WER, TTS code accuracy)."""
    ids = VocabIds.of(tokenizer)
    eos_ids = (ids.im_end, tokenizer.convert_tokens_to_ids(END_OF_TEXT))
    prompts, truths = zip(*(prompt_and_answer(tokenizer, r) for r in records))
    report = {"prompts": len(prompts), "max_new_tokens": max_new_tokens, "modes": {}}
    compile_modes(model, list(prompts), modes, eos_ids, max_new_tokens)
    for mode in modes:
        answers, seconds, forwards, acceptance = decode_all(model, list(prompts), mode, eos_ids, max_new_tokens)
        tokens = sum(len(a) for a in answers)
        report["modes"][mode] = {"answers": answers, "seconds": seconds, "tokens": tokens,
                                 "tokens_per_s": tokens / seconds, "backbone_forwards": forwards,
                                 "acceptance": acceptance}
    vanilla = report["modes"]["vanilla"]
    tasks = [task_of(r) for r in records]
    for mode, entry in report["modes"].items():
        entry["agreement"] = agreement(entry["answers"], vanilla["answers"], ids)
        entry["agreement_by_task"] = {
            task: agreement(*zip(*[(a, v) for a, v, t in zip(entry["answers"], vanilla["answers"], tasks) if t == task]),
                            ids)
            for task in sorted(set(tasks))}
        entry["speedup"] = vanilla["seconds"] / entry["seconds"]
    for mode, entry in report["modes"].items():
        if mode == "lossless" or mode.startswith("lossless:"):
            report[mode] = {"speedup": entry["speedup"], "acceptance": entry["acceptance"],
                            "mean_accepted_drafts": float(sum(entry["acceptance"])),
                            "identical_to_vanilla": entry["agreement"]["exact"] == 1.0}
    report["vanilla_vs_truth"] = agreement(vanilla["answers"], truths, ids)
    report["tasks"] = task_scores(tokenizer, records, vanilla["answers"])
    return report


def task_scores(tokenizer, records, answers):
    """ASR exact match and word error rate; TTS code accuracy (position by position against the
    true codes, over the true length); spoken chat answer text exact match."""
    scores = {}
    for task in ("asr", "tts", "spoken_chat"):
        pairs = [(r, a) for r, a in zip(records, answers) if task_of(r) == task]
        if not pairs:
            continue
        texts = [split_answer(tokenizer, a) for _, a in pairs]
        references = [r["messages"][-1]["content"].replace("<|audio|>", "") for r, _ in pairs]
        entry = {"count": len(pairs),
                 "text_exact": float(np.mean([t == ref for (t, _), ref in zip(texts, references)]))}
        if task == "asr":
            entry["wer"] = float(np.mean([word_error_rate(t, ref) for (t, _), ref in zip(texts, references)]))
        else:
            true_codes = [r["audio_codes"][-1] for r, _ in pairs]
            right = sum(sum(int(i < len(c) and c[i] == t) for i, t in enumerate(truth))
                        for (_, c), truth in zip(texts, true_codes))
            entry["code_accuracy"] = right / max(sum(len(t) for t in true_codes), 1)
        scores[task] = entry
    return scores
