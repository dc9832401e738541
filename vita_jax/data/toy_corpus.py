"""A synthetic spoken-language corpus for the toy MCTP experiment (seeded, no downloads, seconds).

    python -m vita_jax.data.toy_corpus --out runs/toy/data        # train.jsonl, heldout.jsonl, tokenizer/

Text: sentences over a small word list (numbers, arithmetic words, a few nouns and verbs).
Speech: every word is spelled as 2-3 phoneme units (a seeded lexicon over `num_units` units) and
the utterance's unit sequence is rendered as audio codes with coarticulation on both sides:

    unit u with left neighbour l and right neighbour r (silence at the ends, across words too)
    -> a run of 2 + (u + r) % 3 codes; frame i of the run is code 4 * u + (l + i) % 4.

So 4 * num_units codes are used, a run's codes depend on the unit before it and its length on the
unit after it. Inside a word the next code follows from the codes already spoken (the word is
recognisable from its first units), but at a word's last unit the run length, and after it the
next word's first code, depend on the next WORD: a predictor needs the text context (what the
answer says next), not only the audio so far. That is the case the MCTP modules must handle from
the backbone's hidden states. Copying the previous code is never right (codes within a run
differ) and the most frequent code is under 10% of the codes.

Tasks, in the release's jsonl format (spec section 2) with `audio_codes` fields:
  tts          user "Convert the text to speech.\\n{text}" -> assistant "{text}<|audio|>"
  asr          user "Convert the speech to text.\\n<|audio|>" -> assistant "{text}"
  spoken_chat  system CHAT_SYSTEM, user "\\n<|audio|>" (an arithmetic question) -> "{answer}<|audio|>"
  text_chat    user "{question}" -> assistant "{answer}"
Assistant turns with text and audio are interleaved by the data pipeline (Boost ratios by
default); the generator checks that the ratios can interleave its answers.
Held-out sentences (a seeded 10% of all sentences, questions included) never appear in training.
"""

import argparse
import json
import os
import sys
import zlib

import numpy as np

from vita_jax.atomic import atomic_directory
from vita_jax.data.interleave import interleave, parse_ratios
from vita_jax.pipeline.prompts import ASR_REQUEST, CHAT_SYSTEM, TTS_REQUEST, spoken_chat_content

NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
WORDS = NUMBERS + ("plus", "minus", "is", "what", "the", "a", "cat", "dog", "bird", "sun", "sees", "likes",
                   "red", "blue", "big", "small", "runs", "sleeps")
TASKS = ("tts", "asr", "spoken_chat", "text_chat")
CODES_PER_UNIT = 4
MAX_SAMPLES = 1_000_000
TOKENIZER_VOCAB = 400  # BPE size: enough merges for every toy word to be one token


class CorpusError(ValueError):
    pass


def make_lexicon(words, num_units, seed):
    """word -> tuple of 2-3 phoneme units, distinct per word (seeded)."""
    if not words:
        raise CorpusError("toy corpus: the vocabulary is empty; give at least one word")
    if len(set(words)) != len(words):
        raise CorpusError(f"toy corpus: the vocabulary repeats words: {sorted(w for w in set(words) if words.count(w) > 1)}")
    for w in words:
        if not w.isalpha() or not w.islower():
            raise CorpusError(f"toy corpus: word {w!r} must be lower-case letters only")
    if not 2 <= num_units <= 1000:
        raise CorpusError(f"toy corpus: num_units {num_units} out of range [2, 1000]")
    if len(words) > num_units ** 2 * (num_units + 1) // 2:
        raise CorpusError(f"toy corpus: {len(words)} words cannot get distinct spellings over {num_units} units")
    rng = np.random.default_rng([seed, 1])
    lexicon, used = {}, set()
    for w in words:
        while True:
            spelling = tuple(int(u) for u in rng.integers(0, num_units, 2 + int(rng.integers(0, 2))))
            if spelling not in used:
                break
        used.add(spelling)
        lexicon[w] = spelling
    return lexicon


def render_units(units, num_units):
    """Audio codes of a unit sequence (silence = num_units beyond both ends), by the rule above."""
    codes, silence = [], num_units
    padded = [silence, *units, silence]
    for i in range(1, len(padded) - 1):
        left, unit, right = padded[i - 1:i + 2]
        codes += [CODES_PER_UNIT * unit + (left + frame) % CODES_PER_UNIT for frame in range(2 + (unit + right) % 3)]
    return codes


def speak(text, lexicon, num_units):
    """Audio codes of a sentence (words separated by spaces)."""
    return render_units([u for word in text.split() for u in lexicon[word]], num_units)


def arithmetic_pairs():
    """(question, answer) for a + b and a - b with results in 0..9."""
    pairs = []
    for a in range(10):
        for b in range(10):
            if a + b <= 9:
                pairs.append((f"what is {NUMBERS[a]} plus {NUMBERS[b]}",
                              f"{NUMBERS[a]} plus {NUMBERS[b]} is {NUMBERS[a + b]}"))
            if a - b >= 0:
                pairs.append((f"what is {NUMBERS[a]} minus {NUMBERS[b]}",
                              f"{NUMBERS[a]} minus {NUMBERS[b]} is {NUMBERS[a - b]}"))
    return pairs


def is_heldout(text, seed):
    """A seeded, stable 10% of sentences, kept out of training."""
    return zlib.crc32(f"{seed}:{text}".encode()) % 10 == 0


def random_sentence(rng, words, min_words, max_words):
    return " ".join(words[int(i)] for i in rng.integers(0, len(words), int(rng.integers(min_words, max_words + 1))))


def record(task, text, codes, question=None, question_codes=None):
    """One jsonl record of `task` (release format, codes inline)."""
    if task == "tts":
        return {"messages": [{"role": "user", "content": TTS_REQUEST + text},
                             {"role": "assistant", "content": text + "<|audio|>"}],
                "audios": ["toy/tts.wav"], "audio_codes": [codes]}
    if task == "asr":
        return {"messages": [{"role": "user", "content": ASR_REQUEST}, {"role": "assistant", "content": text}],
                "audios": ["toy/asr.wav"], "audio_codes": [codes]}
    if task == "spoken_chat":
        return {"messages": [{"role": "system", "content": CHAT_SYSTEM},
                             {"role": "user", "content": spoken_chat_content(speech=True)},
                             {"role": "assistant", "content": text + "<|audio|>"}],
                "audios": ["toy/question.wav", "toy/answer.wav"], "audio_codes": [question_codes, codes]}
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": text}],
            "audios": []}


def generate(num_samples, seed=0, words=WORDS, num_units=16, min_words=3, max_words=6, ratios="boost",
             task_weights=(4, 2, 3, 1), heldout=False):
    """`num_samples` records (the training split, or the held-out one) as dicts; deterministic."""
    check_arguments(num_samples, words, num_units, min_words, max_words, ratios, task_weights)
    lexicon = make_lexicon(list(words), num_units, seed)
    if not all(w in lexicon for w in NUMBERS + ("plus", "minus", "is", "what")) and task_weights[2] + task_weights[3]:
        raise CorpusError("toy corpus: the chat tasks need the words zero..nine, plus, minus, is, what; "
                          "give task weights 0 for spoken_chat and text_chat with another vocabulary")
    pairs = [p for p in arithmetic_pairs() if is_heldout(p[0], seed) == heldout] if task_weights[2] + task_weights[3] \
        else []
    if task_weights[2] + task_weights[3] and not pairs:
        raise CorpusError("toy corpus: no arithmetic question falls in this split; use more or fewer held-out items")
    rng = np.random.default_rng([seed, 2, int(heldout)])
    probabilities = np.asarray(task_weights, float) / sum(task_weights)
    out = []
    while len(out) < num_samples:
        task = TASKS[int(rng.choice(len(TASKS), p=probabilities))]
        if task in ("tts", "asr"):
            text = random_sentence(rng, list(words), min_words, max_words)
            if is_heldout(text, seed) != heldout:
                continue
            out.append(record(task, text, speak(text, lexicon, num_units)))
        else:
            question, answer = pairs[int(rng.integers(0, len(pairs)))]
            out.append(record(task, answer, speak(answer, lexicon, num_units), question,
                              speak(question, lexicon, num_units)))
    return out, lexicon


def check_arguments(num_samples, words, num_units, min_words, max_words, ratios, task_weights):
    """One-line CorpusError naming the bad argument."""
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or \
            not 1 <= num_samples <= MAX_SAMPLES:
        raise CorpusError(f"toy corpus: num_samples {num_samples!r} out of range [1, {MAX_SAMPLES}]")
    if not words:
        raise CorpusError("toy corpus: the vocabulary is empty; give at least one word")
    if not 1 <= min_words <= max_words <= 64:
        raise CorpusError(f"toy corpus: sentence length [{min_words}, {max_words}] words must satisfy "
                          "1 <= min_words <= max_words <= 64")
    if len(task_weights) != len(TASKS) or any(w < 0 for w in task_weights) or not sum(task_weights):
        raise CorpusError(f"toy corpus: task_weights {list(task_weights)} must be {len(TASKS)} non-negative "
                          f"numbers ({', '.join(TASKS)}), not all zero")
    try:
        parsed = parse_ratios(ratios)
    except ValueError as error:
        raise CorpusError(f"toy corpus: ratios {ratios!r} cannot interleave: {error}") from None
    shortest_audio = len(render_units([0] * 2 * min_words, num_units))  # at least one code per unit
    try:
        interleave([0] * min_words, [0] * shortest_audio, parsed, -1, -2)
    except ValueError as error:
        raise CorpusError(f"toy corpus: ratios {ratios!r} cannot interleave: {error}") from None


def all_texts(records):
    """Every message text (tokenizer training)."""
    return [m["content"] for r in records for m in r["messages"]]


def write_corpus(out_dir, num_train=4000, num_heldout=200, seed=0, num_units=16, ratios="boost"):
    """train.jsonl, heldout.jsonl, lexicon.json and the toy tokenizer (tokenizer/) under `out_dir`,
    written atomically. Returns out_dir."""
    from vita_jax.data.tiny_tokenizer import build_tiny_tokenizer

    train, lexicon = generate(num_train, seed, num_units=num_units, ratios=ratios)
    heldout, _ = generate(num_heldout, seed, num_units=num_units, ratios=ratios, heldout=True)
    with atomic_directory(out_dir, replaceable=lambda path: os.path.isfile(os.path.join(path, "lexicon.json"))) as tmp:
        for name, records in (("train.jsonl", train), ("heldout.jsonl", heldout)):
            with open(os.path.join(tmp, name), "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in records)
        with open(os.path.join(tmp, "lexicon.json"), "w") as f:
            json.dump({"seed": seed, "num_units": num_units, "codes_per_unit": CODES_PER_UNIT,
                       "lexicon": {w: list(u) for w, u in lexicon.items()}}, f, indent=1)
        build_tiny_tokenizer(all_texts(train + heldout) + [CHAT_SYSTEM], os.path.join(tmp, "tokenizer"),
                             vocab_size=TOKENIZER_VOCAB)
    return out_dir


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="output directory (replaced if it holds a toy corpus)")
    parser.add_argument("--num-train", type=int, default=4000)
    parser.add_argument("--num-heldout", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-units", type=int, default=16)
    parser.add_argument("--ratios", default="boost", help="boost, balance or a list like 1,10,4,10")
    args = parser.parse_args(argv)
    ratios = args.ratios if args.ratios in ("boost", "balance") else [int(r) for r in args.ratios.split(",")]
    try:
        write_corpus(args.out, args.num_train, args.num_heldout, args.seed, args.num_units, ratios)
    except CorpusError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: train.jsonl ({args.num_train}), heldout.jsonl ({args.num_heldout}), lexicon.json, "
          "tokenizer/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
