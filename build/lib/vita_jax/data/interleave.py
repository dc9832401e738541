"""Interleave an assistant turn's text and audio tokens by a ratio list (spec section 3).

r = [t1, a1, t2, a2, ...]: text chunks of t_i tokens, audio chunks of a_i - 2 tokens (a_i counts
the begin/end markers); the last (t, a) pair repeats. With n = min(#text chunks, #audio chunks)
everything past chunk n-1 is merged into chunk n-1 on both sides. Output per chunk:
text_chunk + [begin_of_audio] + audio_chunk + [end_of_audio].
"""

BOOST = (1, 10, 4, 10)
BALANCE = (1, 4, 3, 8, 4, 10)
RATIOS = {"boost": BOOST, "balance": BALANCE}


def parse_ratios(ratios):
    """A named ratio list ("boost", "balance") or a sequence of ints; validated."""
    if isinstance(ratios, str):
        if ratios not in RATIOS:
            raise ValueError(f"unknown interleave ratios {ratios!r}; use {', '.join(RATIOS)} or a list of ints")
        return RATIOS[ratios]
    ratios = tuple(int(r) for r in ratios)
    if not ratios or len(ratios) % 2:
        raise ValueError(f"interleave ratios must be [t1, a1, t2, a2, ...] pairs, got {list(ratios)}")
    if any(t < 1 for t in ratios[::2]) or any(a < 3 for a in ratios[1::2]):
        raise ValueError(f"interleave ratios need text chunks >= 1 and audio chunks >= 3 (markers included), "
                         f"got {list(ratios)}")
    return ratios


def chunk(tokens, sizes):
    """Cut `tokens` into consecutive chunks of sizes[0], sizes[1], ... (the last size repeats)."""
    chunks, start, i = [], 0, 0
    while start < len(tokens):
        size = sizes[min(i, len(sizes) - 1)]
        chunks.append(list(tokens[start:start + size]))
        start, i = start + size, i + 1
    return chunks


def merge_tail(chunks, n):
    """Chunks 0..n-2 unchanged, chunk n-1 absorbing every later chunk."""
    return chunks[:n - 1] + [[t for c in chunks[n - 1:] for t in c]]


def interleave(text, audio, ratios, begin_of_audio, end_of_audio):
    """The interleaved token list for text ids `text` and audio token ids `audio` (no markers)."""
    ratios = parse_ratios(ratios)
    text_chunks = chunk(text, ratios[0::2])
    audio_chunks = chunk(audio, [a - 2 for a in ratios[1::2]])
    n = min(len(text_chunks), len(audio_chunks))
    if n == 0:
        raise ValueError("interleave needs both text and audio tokens")
    out = []
    for t, a in zip(merge_tail(text_chunks, n), merge_tail(audio_chunks, n)):
        out += t + [begin_of_audio] + a + [end_of_audio]
    return out
