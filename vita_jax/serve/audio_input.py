"""Audio a client uploads -> float32 mono samples and their rate, checked against a length limit.

Two forms: "pcm16" (raw little-endian 16-bit mono samples at a stated rate; what the page sends) and
any container FFmpeg reads ("webm"/"ogg" from MediaRecorder with opus, "wav", "mp3", ...), decoded
with PyAV (`av`) to 16 kHz mono."""

import io

import numpy as np

PCM16 = "pcm16"
AUTO = "auto"  # any container FFmpeg recognizes (HTTP uploads)
CONTAINER_RATE = 16000  # containers are decoded straight to the speech tokenizer's rate
FORMATS = (PCM16, "webm", "ogg", "wav", "mp3", "flac", "m4a", AUTO)
MAX_CONTAINER_BYTES_PER_S = 48000 * 2 * 4  # 48 kHz stereo float: above any compressed or PCM upload


class AudioInputError(ValueError):
    """The upload cannot be used (undecodable, empty, too long, unknown format); the message says why."""


def check_format(fmt, sample_rate=None):
    """Validate a recording's announced format (and, for pcm16, its sample rate)."""
    if fmt not in FORMATS:
        raise AudioInputError(f"unknown audio format {fmt!r}; use one of {', '.join(FORMATS)}")
    if fmt == PCM16 and (isinstance(sample_rate, bool) or not isinstance(sample_rate, int)
                         or not 8000 <= sample_rate <= 192000):
        raise AudioInputError(f"pcm16 audio needs an integer sample_rate in [8000, 192000], got {sample_rate!r}")


def check_upload_size(n_bytes, fmt, sample_rate, max_seconds):
    """Refuse a recording that is already too long while it is still arriving."""
    if max_seconds is None:
        return
    if fmt == PCM16:
        check_length(n_bytes / 2 / sample_rate, max_seconds)
    elif n_bytes > max_seconds * MAX_CONTAINER_BYTES_PER_S:
        raise AudioInputError(f"the {fmt} recording is {n_bytes} bytes, more than {max_seconds:g} s of audio can "
                              f"take; this server takes at most {max_seconds:g} s (--max-audio-s)")


def decode_audio(data, fmt, sample_rate=None, max_seconds=None):
    """(float32 samples in [-1, 1], sample rate) of an upload."""
    check_format(fmt, sample_rate)
    if not data:
        raise AudioInputError("the recording is empty")
    if fmt == PCM16:
        if len(data) % 2:
            raise AudioInputError(f"pcm16 audio must hold whole 16-bit samples, got {len(data)} bytes")
        wav, rate = np.frombuffer(data, "<i2").astype(np.float32) / 32768.0, sample_rate
    else:
        wav, rate = _decode_container(data, fmt), CONTAINER_RATE
    if not len(wav):
        raise AudioInputError(f"the {fmt} recording holds no audio samples")
    check_length(len(wav) / rate, max_seconds)
    return wav, rate


def check_length(seconds, max_seconds):
    if max_seconds is not None and seconds > max_seconds:
        raise AudioInputError(f"the recording is {seconds:.1f} s long; this server takes at most {max_seconds:g} s "
                              f"(--max-audio-s)")


def _decode_container(data, fmt):
    import av

    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise AudioInputError(f"the {fmt} upload has no audio stream")
            resampler = av.AudioResampler(format="flt", layout="mono", rate=CONTAINER_RATE)
            pieces = []
            for frame in container.decode(audio=0):
                pieces += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
            pieces += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    except AudioInputError:
        raise
    except (av.FFmpegError, ValueError, EOFError) as error:
        raise AudioInputError(f"could not decode the {fmt} audio: {error}") from error
    return np.concatenate(pieces).astype(np.float32) if pieces else np.zeros(0, np.float32)
