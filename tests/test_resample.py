"""The default resampler of speech input is torchaudio's `Resample` defaults (the original
GLM-4-Voice front end), checked against a torch computation of the same kernel."""

import numpy as np
import pytest
import soundfile

from vita_jax.audio.resample import resample_sinc_hann, sinc_hann_kernel
from vita_jax.audio.wav_io import load_audio, resample

RATES = (8000, 22050, 24000, 44100, 48000)


@pytest.mark.torch
@pytest.mark.parametrize("orig", RATES)
def test_kernel_and_output_match_torch(orig):
    torch = pytest.importorskip("torch")
    from tests.torch_refs.resample_ref import resample as torch_resample
    from tests.torch_refs.resample_ref import sinc_hann_kernel as torch_kernel

    kernels, width = sinc_hann_kernel(orig, 16000)
    ref_kernels, ref_width = torch_kernel(orig, 16000)
    assert width == ref_width and kernels.shape == tuple(ref_kernels.shape[::2])
    np.testing.assert_array_equal(kernels, ref_kernels[:, 0].numpy())

    rng = np.random.default_rng(orig)
    wav = (0.3 * rng.standard_normal(int(1.37 * orig))).astype(np.float32)
    ours = resample_sinc_hann(wav, orig, 16000)
    ref = torch_resample(torch.from_numpy(wav), orig, 16000).numpy()
    assert ours.shape == ref.shape == (int(np.ceil(16000 * len(wav) / orig)),)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=2e-6)


def test_files_at_other_rates_use_it_by_default(tmp_path):
    rng = np.random.default_rng(0)
    wav = (0.3 * rng.standard_normal(44100)).astype(np.float32)
    path = str(tmp_path / "a.wav")
    soundfile.write(path, wav, 44100, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(path), resample_sinc_hann(wav, 44100, 16000))
    soxr = resample(wav, 44100, 16000, method="soxr_hq")  # librosa's resamplers stay an option
    assert soxr.shape == (16000,) and not np.array_equal(soxr, load_audio(path))
