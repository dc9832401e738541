"""Streaming decoding equals the original AudioDecoder bookkeeping (spec section 6), replayed with
the torch references on the same weights, noise and source randomness."""

import numpy as np
import pytest
import torch

from tests.helpers.compiles import count_compiles
from tests.torch_refs.decoder_checkpoint import rel_l2, tiny_decoder
from vita_jax.audio.streaming_decoder import StreamingDecoder

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")
CHUNKS = [list(range(100, 110)), list(range(2000, 2010)), list(range(16374, 16384)), [5, 6, 7, 8, 9, 10, 11]]


def reference_stream(dec, flow, hift, chunks, stream, context_tokens=None):
    """The original token2wav bookkeeping in torch, with `stream`'s noise and source keys."""
    window = np.hamming(68)
    overlap = cache_mel = cache_src = None
    history, feats, wavs, mels = [], torch.zeros(1, 0, dec.n_mels), [], []
    for i, chunk in enumerate(chunks):
        finalize = i == len(chunks) - 1
        prompt, prompt_feat = history, feats
        if context_tokens is not None and len(history) > context_tokens:
            new_frames = dec.mel_frames(len(history) + len(chunk)) - feats.shape[1]
            prompt = history[-context_tokens:]
            prompt_feat = feats[:, feats.shape[1] - (dec.mel_frames(len(prompt) + len(chunk)) - new_frames):]
        n_frames = dec.mel_frames(len(prompt) + len(chunk))
        z = torch.from_numpy(np.array(dec.draw_noise(stream.flow_noise_key(), n_frames)))
        with torch.no_grad():
            prompt_tokens = torch.tensor(prompt, dtype=torch.long)[None]
            mel = flow.inference(torch.tensor(chunk)[None], prompt_tokens, prompt_feat, z)
        if overlap is not None:
            fade_in, fade_out = torch.from_numpy(window[:34]), torch.from_numpy(window[34:])
            mel[..., :34] = mel[..., :34] * fade_in + overlap[..., -34:] * fade_out
        if cache_mel is not None:
            mel = torch.cat([cache_mel, mel], dim=2)
        src = torch.zeros(1, 1, 0) if cache_src is None else cache_src
        if not finalize:
            overlap, mel = mel[..., -34:], mel[..., :-34]
        phase, noise = dec.source_noise(stream.source_key(i), mel.shape[2])
        with torch.no_grad():
            wav, s = hift.inference(mel, torch.from_numpy(np.array(phase)),
                                    torch.from_numpy(np.array(noise)).transpose(1, 2), src)
        if not finalize:
            cache_mel, cache_src = mel[..., -1:], s[..., -256:]
            wav = wav[:, :-256]
        history = history + list(chunk)
        feats = torch.cat([feats, mel.transpose(1, 2)], dim=1)
        wavs.append(wav[0].numpy())
        mels.append(mel[0].numpy().T)
    return wavs, mels


@pytest.mark.slow
@pytest.mark.parametrize("context_tokens", [None, 10])
def test_stream_matches_the_original_bookkeeping(context_tokens):
    dec, flow, hift = tiny_decoder()
    stream = StreamingDecoder(dec, context_tokens=context_tokens)
    got = [stream.push(c, finalize=i == len(CHUNKS) - 1) for i, c in enumerate(CHUNKS)]
    ref_wavs, ref_mels = reference_stream(dec, flow, hift, CHUNKS, stream, context_tokens)
    # chunk 1: 68 frames - 34 held back, minus the 256 samples re-synthesised next time
    assert [len(m) for m, _ in zip(ref_mels, got)][0] == 34 and len(got[0][0]) == 34 * 256 - 256
    for (wav, mel), ref_wav, ref_mel in zip(got, ref_wavs, ref_mels):
        assert wav.shape == ref_wav.shape and mel.shape == ref_mel.shape
        assert rel_l2(ref_mel, mel) < 1e-5
        assert rel_l2(ref_wav, wav) < 1e-4
    # the stream() generator gives the same chunks
    streamed = list(dec.stream(CHUNKS, context_tokens=context_tokens))
    for (wav, _), s in zip(got, streamed):
        np.testing.assert_array_equal(wav, s)


def test_bounded_context_reuses_one_flow_program():
    dec = tiny_decoder()[0]
    stream = StreamingDecoder(dec, context_tokens=10)
    chunks = [list(range(i * 10, i * 10 + 10)) for i in range(6)]
    stream.push(chunks[0])
    stream.push(chunks[1])
    with count_compiles() as counts:
        for c in chunks[2:]:
            stream.push(c)
    assert counts.compiles <= 1  # constant flow shapes: at most HiFT's one longer bucket compiles as it grows


def test_stream_errors():
    dec = tiny_decoder()[0]
    stream = StreamingDecoder(dec)
    message = "code chunk 0: 3 codes give 20 mel frames, not more than the 34-frame overlap"
    with pytest.raises(ValueError, match=message):
        stream.push([1, 2, 3])
    stream = StreamingDecoder(dec)
    stream.push(list(range(10)), finalize=True)
    with pytest.raises(RuntimeError, match="finalized"):
        stream.push(list(range(10)))
    with pytest.raises(ValueError, match="code chunk 0: code 16384"):
        list(dec.stream([[16384] * 10]))
