"""The VITA-Audio-Plus speech front end (FunASR `WavFrontend`, spec section 1):
mono 16 kHz float wave in [-1, 1] -> Kaldi fbank (80 bins, 25/10 ms, Hamming, pre-emphasis 0.97,
snip edges, int16 units) -> LFR stacking (m=7, n=6) -> CMVN from `am.mvn` -> [T, 560] float32.

The fbank is computed by `kaldi-native-fbank` (what the verified original ran). Dither defaults
to 0 (deterministic); with `dither > 0` Gaussian noise of that std (int16 units) from an explicit
numpy Generator is added to the samples before framing (the original adds it per frame from an
unseeded RNG; the per-frame statistics are the same).
"""

import dataclasses
import math
import os

import numpy as np

from vita_jax.audio.wav_io import AudioLoadError, check_waveform

SAMPLE_RATE = 16000
NUM_MEL_BINS = 80
FRAME_LENGTH_MS = 25.0
FRAME_SHIFT_MS = 10.0
LFR_M, LFR_N = 7, 6
FEATURE_SIZE = LFR_M * NUM_MEL_BINS  # 560
INT16_SCALE = 32768.0


class CmvnError(ValueError):
    """A missing or malformed `am.mvn`; the message names the file."""


def read_cmvn(path):
    """(shift, scale), each [560] float32, from a Kaldi nnet1 `am.mvn` (<AddShift>, <Rescale>)."""
    if not os.path.isfile(path):
        raise CmvnError(f"CMVN file not found: {path} (the checkpoint folder must hold SenseVoice's am.mvn)")
    with open(path) as f:
        lines = f.read().splitlines()
    found = {}
    for i, line in enumerate(lines[:-1]):
        tokens = line.split()
        if tokens and tokens[0] in ("<AddShift>", "<Rescale>"):
            values = lines[i + 1].split()
            try:
                found[tokens[0]] = np.array(values[3:-1], np.float32)
            except ValueError as err:
                raise CmvnError(f"{path}: unreadable {tokens[0]} values: {err}") from err
    for name in ("<AddShift>", "<Rescale>"):
        if name not in found:
            raise CmvnError(f"{path}: no {name} block")
        if found[name].shape != (FEATURE_SIZE,):
            raise CmvnError(f"{path}: {name} has {found[name].size} values, expected {FEATURE_SIZE}")
    return found["<AddShift>"], found["<Rescale>"]


def num_lfr_rows(num_samples):
    """T for a 16 kHz wave of `num_samples`: ceil(F / 6), F the snip-edges fbank frame count."""
    frame = min(int(FRAME_LENGTH_MS * SAMPLE_RATE / 1000), num_samples)
    frames = 1 + (num_samples - frame) // int(FRAME_SHIFT_MS * SAMPLE_RATE / 1000)
    return -(-frames // LFR_N)


def kaldi_fbank(wav, dither=0.0, rng=None):
    """Log-mel fbank [F, 80] float32 of a 16 kHz wave in [-1, 1] (Kaldi options of spec section 1)."""
    import kaldi_native_fbank as knf

    samples = np.asarray(wav, np.float32) * np.float32(INT16_SCALE)
    if dither:
        if rng is None:
            raise ValueError("dither > 0 needs an explicit rng (numpy.random.Generator)")
        samples = samples + rng.standard_normal(samples.shape).astype(np.float32) * np.float32(dither)
    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = SAMPLE_RATE
    opts.frame_opts.frame_length_ms = min(FRAME_LENGTH_MS, 1000.0 * len(samples) / SAMPLE_RATE)
    opts.frame_opts.frame_shift_ms = FRAME_SHIFT_MS
    opts.frame_opts.dither = 0.0
    opts.frame_opts.window_type = "hamming"
    opts.frame_opts.snip_edges = True
    opts.mel_opts.num_bins = NUM_MEL_BINS
    opts.energy_floor = 0.0
    fbank = knf.OnlineFbank(opts)
    fbank.accept_waveform(SAMPLE_RATE, samples.tolist())
    fbank.input_finished()
    return np.stack([fbank.get_frame(i) for i in range(fbank.num_frames_ready)]).astype(np.float32)


def stack_low_frame_rate(fbank, m=LFR_M, n=LFR_N):
    """LFR: row i = fbank rows clip(n i - (m-1)/2 + 0..m-1) concatenated -> [ceil(F / n), m * 80]."""
    frames = fbank.shape[0]
    rows = -(-frames // n)
    index = np.clip(n * np.arange(rows)[:, None] + np.arange(m)[None] - (m - 1) // 2, 0, frames - 1)
    return fbank[index].reshape(rows, m * fbank.shape[1])


def sinc_resample(wav, orig_sr, new_sr, lowpass_filter_width=6, rolloff=0.99):
    """`torchaudio.transforms.Resample(orig_sr, new_sr)` with its defaults (Hann-windowed sinc)."""
    gcd = math.gcd(orig_sr, new_sr)
    orig, new = orig_sr // gcd, new_sr // gcd
    base = min(orig, new) * rolloff
    width = math.ceil(lowpass_filter_width * orig / base)
    t = (np.arange(0, -new, -1)[:, None] / new + np.arange(-width, width + orig)[None] / orig) * base
    t = np.clip(t, -lowpass_filter_width, lowpass_filter_width)
    window = np.cos(t * math.pi / lowpass_filter_width / 2) ** 2
    t = t * math.pi
    sinc = np.where(t == 0, 1.0, np.sin(t) / np.where(t == 0, 1.0, t))
    kernels = (sinc * window * base / orig).astype(np.float32)  # [new, 2 width + orig]
    padded = np.pad(np.asarray(wav, np.float32), (width, width + orig))
    frames = np.lib.stride_tricks.sliding_window_view(padded, kernels.shape[1])[::orig]
    out = (frames @ kernels.T).reshape(-1)
    return out[: math.ceil(new * len(wav) / orig)].astype(np.float32)


def mono_16k(wav, sample_rate=SAMPLE_RATE, name="<array>"):
    """A float wave [samples] or [channels, samples] at `sample_rate` -> mono 16 kHz float32,
    checked (AudioLoadError naming `name` for empty, NaN or badly shaped input)."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise AudioLoadError(f"{name}: sample_rate must be a positive integer (Hz), got {sample_rate!r}")
    wav = np.asarray(wav)
    if not (np.issubdtype(wav.dtype, np.floating) or np.issubdtype(wav.dtype, np.integer)):
        raise AudioLoadError(f"{name}: expected a numeric waveform, got dtype {wav.dtype}")
    if wav.ndim == 2:
        wav = wav.astype(np.float32).mean(axis=0)  # channels first, as torchaudio.load returns them
    wav = check_waveform(wav, name=name)
    if sample_rate != SAMPLE_RATE:
        wav = check_waveform(sinc_resample(wav, int(sample_rate), SAMPLE_RATE), name=name)
    return wav


def load_wav_file(path):
    """All channels of an audio file, mixed to mono and resampled to 16 kHz."""
    import soundfile

    if not os.path.isfile(path):
        raise AudioLoadError(f"audio file not found: {path}")
    try:
        data, sample_rate = soundfile.read(path, dtype="float32", always_2d=True)
    except Exception as err:  # noqa: BLE001 - re-raised naming the file
        raise AudioLoadError(f"cannot read audio file {path}: {err}") from err
    return mono_16k(data.T, int(sample_rate), name=path)


@dataclasses.dataclass(frozen=True, eq=False)
class Frontend:
    """fbank -> LFR -> CMVN with the statistics of one `am.mvn`."""

    cmvn_shift: np.ndarray
    cmvn_scale: np.ndarray
    dither: float = 0.0

    @classmethod
    def from_file(cls, path, dither=0.0):
        return cls(*read_cmvn(path), dither=dither)

    def __call__(self, audio, sample_rate=SAMPLE_RATE, rng=None, name=None):
        """Features [T, 560] float32 of a file path or a wave ([samples] or [channels, samples])."""
        if isinstance(audio, (str, os.PathLike)):
            wav = load_wav_file(os.fspath(audio))
        else:
            wav = mono_16k(audio, sample_rate, name=name or "<array>")
        lfr = stack_low_frame_rate(kaldi_fbank(wav, self.dither, rng))
        return ((lfr + self.cmvn_shift) * self.cmvn_scale).astype(np.float32)
