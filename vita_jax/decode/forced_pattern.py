"""A logits mask that forces the release's text/audio interleaving (benchmarks and the demo).

Random weights almost never emit `<|end_of_audio|>`, so a speech pipeline on random checkpoints
would never hand audio to the speech decoder. `ForcedInterleave` makes the answer follow a ratio
list of spec section 3 (Boost `[1, 10, 4, 10]` by default: 1 text token, `<|begin_of_audio|>`,
8 audio codes, `<|end_of_audio|>`, then 4 text tokens and 10 more, repeating the last pair):
before each token is chosen, every id of the wrong kind gets -inf. The forwards are the same as
without it (one elementwise select over the logits of the emitted position), so timings measured
with it are those of real decoding that happens to produce this pattern.
"""

import dataclasses

import jax.numpy as jnp
import numpy as np

from vita_jax.data.interleave import BOOST

TEXT, BEGIN, AUDIO, END = 0, 1, 2, 3


@dataclasses.dataclass(frozen=True)
class ForcedInterleave:
    """Token kinds by output position. Text ids: [0, text_end) minus `not_text` (e.g. eos ids);
    audio ids: [audio_offset, audio_offset + num_audio_codes)."""

    begin_of_audio: int
    end_of_audio: int
    audio_offset: int
    num_audio_codes: int
    text_end: int
    not_text: tuple = ()
    ratios: tuple = BOOST

    def __post_init__(self):
        ratios = tuple(int(r) for r in self.ratios)
        if len(ratios) < 2 or len(ratios) % 2 or any(r < 1 for r in ratios[0::2]) or any(r < 3 for r in ratios[1::2]):
            raise ValueError(f"interleaving ratios must be pairs [text >= 1, audio >= 3 (markers included)], "
                             f"got {list(self.ratios)}")
        object.__setattr__(self, "ratios", ratios)
        object.__setattr__(self, "not_text", tuple(int(t) for t in self.not_text))

    def _kinds(self, text, audio):
        return [TEXT] * text + [BEGIN] + [AUDIO] * (audio - 2) + [END]

    def kind_tables(self):
        """(kinds of the positions before the repeating pair, kinds of one repeating pair)."""
        pairs = list(zip(self.ratios[0::2], self.ratios[1::2]))
        transient = [kind for text, audio in pairs[:-1] for kind in self._kinds(text, audio)]
        return np.array(transient, np.int32), np.array(self._kinds(*pairs[-1]), np.int32)

    def id_kinds(self, vocab_size):
        """Kind of every id [V] (-1: never allowed)."""
        kinds = np.full(vocab_size, -1, np.int32)
        kinds[:self.text_end] = TEXT
        kinds[[t for t in self.not_text if 0 <= t < vocab_size]] = -1
        kinds[self.audio_offset:self.audio_offset + self.num_audio_codes] = AUDIO
        kinds[self.begin_of_audio], kinds[self.end_of_audio] = BEGIN, END
        return kinds

    def kinds_at(self, index):
        """Kind of output position `index` [B] (0 = the first generated token)."""
        transient, cycle = self.kind_tables()
        steady = jnp.asarray(cycle)[jnp.maximum(index - len(transient), 0) % len(cycle)]
        if not len(transient):
            return steady
        return jnp.where(index < len(transient), jnp.asarray(transient)[jnp.minimum(index, len(transient) - 1)],
                         steady)

    def apply(self, logits, index):
        """logits [B, V] with the ids of the wrong kind for position `index` [B] set to -inf."""
        allowed = jnp.asarray(self.id_kinds(logits.shape[-1]))[None, :] == self.kinds_at(index)[:, None]
        return jnp.where(allowed, logits, -jnp.inf)
