"""Parity of the JAX GLM-4-Voice decoder modules with the PyTorch references (tiny random weights, float32)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from tests.torch_refs.decoder_checkpoint import rel_l2, tiny_decoder
from vita_jax.audio.flow_encoder import FlowEncoder
from vita_jax.audio.flow_estimator import FlowEstimator, attention, dense_attention
from vita_jax.audio.flow_matching import LengthRegulator, euler_schedule, mel_length
from vita_jax.audio.hift import SIN_SQUARED_LIMIT, HiFTGenerator, istft, sin_squared, snake, stft
from vita_jax.audio.speech_decoder import SpeechDecoder

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")
TOL = 1e-5


def channels_last(t):
    return jnp.asarray(t.detach().numpy().transpose(0, 2, 1))


@pytest.fixture(scope="module")
def models():
    return tiny_decoder()


def test_mel_length_formula_matches_reference_for_1_to_40_tokens(models):
    dec, flow, _ = models
    for n in range(1, 41):
        assert mel_length(n, 12.5) == flow.mel_length(n) == dec.mel_frames(n), n
    assert [mel_length(n, 12.5) for n in (10, 13, 25)] == [68, 89, 172]  # spec section 2 [verified]
    codes = np.arange(40) * 401
    for n in (1, 10, 40):
        mel = dec.token2mel(codes[:n])
        assert mel.shape == (dec.n_mels, mel_length(n, 12.5)) and mel.dtype == np.float32


@pytest.mark.parametrize("length,padded_to", [(23, 23), (23, 40)])
def test_encoder_matches_reference(models, length, padded_to):
    dec, flow, _ = models
    x = torch.randn(1, length, dec.cfg.flow.input_size)
    with torch.no_grad():
        ref = flow.encoder(x, torch.ones(1, length, dtype=torch.bool)).numpy()
    xb = np.zeros((1, padded_to, x.shape[-1]), np.float32)
    xb[:, :length] = x.numpy()
    valid = jnp.arange(padded_to)[None] < length
    got = jax.jit(FlowEncoder(dec.cfg.flow).apply)({"params": dec.params["flow"]["encoder"]}, jnp.asarray(xb), valid)
    assert rel_l2(ref, got[:, :length]) < TOL


def test_length_regulator_matches_reference(models):
    dec, flow, _ = models
    c = dec.cfg.flow.output_size
    h = torch.randn(1, 17, c)
    n_frames = mel_length(17, 12.5)
    with torch.no_grad():
        ref = flow.length_regulator(h, n_frames).numpy()
    lr = LengthRegulator(dec.cfg.flow.regulator_channels, dec.cfg.flow.regulator_blocks)
    hb = jnp.zeros((1, 20, c)).at[:, :17].set(h.numpy())
    got = lr.apply({"params": dec.params["flow"]["length_regulator"]}, hb, 17, n_frames, n_frames + 9)
    assert rel_l2(ref, got[:, :n_frames]) < TOL
    assert float(jnp.abs(got[:, n_frames:]).max()) == 0.0


# 600 / 640 frames: attention runs one head at a time (above head_attention.PER_HEAD_ABOVE).
@pytest.mark.parametrize("length,padded_to", [(27, 27), (27, 34), (600, 600), (600, 640)])
def test_estimator_matches_reference(models, length, padded_to):
    dec, flow, _ = models
    c = dec.cfg.flow.output_size
    x, mu, cond = (torch.randn(1, c, length) for _ in range(3))
    spks, t = torch.randn(1, c), torch.tensor([0.3])
    with torch.no_grad():
        ref = flow.decoder.estimator(x, torch.ones(1, 1, length), mu, t, spks, cond).numpy().transpose(0, 2, 1)

    def buf(a):
        return jnp.zeros((1, padded_to, c)).at[:, :length].set(channels_last(a))

    mask = (jnp.arange(padded_to) < length).astype(jnp.float32)[None, :, None]
    est = FlowEstimator(dec.cfg.flow)
    apply = jax.jit(est.apply, static_argnums=7)
    got = apply({"params": dec.params["flow"]["decoder.estimator"]}, buf(x), mask, buf(mu), jnp.asarray(t.numpy()),
                jnp.asarray(spks.numpy()), buf(cond), padded_to != length)
    assert rel_l2(ref, got[:, :length]) < TOL


@pytest.mark.parametrize("padded", [False, True])
def test_per_head_blocked_attention_equals_the_batched_softmax(padded):
    """Long sequences: one head at a time, in query blocks (here 3 of 104 for 300 frames),
    normalised after the `p v` product; padded keys (bias -inf) get no weight."""
    q, k, v = (jax.random.normal(jax.random.key(i), (2, 3, 300, 16)) for i in range(3))
    bias = jnp.where(jnp.arange(300) < jnp.array([[300], [271]]), 0.0, -jnp.inf)[:, None, None, :] if padded else None
    expected = dense_attention(q, k, v, bias)
    got = attention(q, k, v, bias, query_block=128)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_euler_schedule_is_the_cosine_recurrence():
    ts = [0, 0.01231, 0.04894, 0.10899, 0.19098, 0.29289, 0.41221, 0.54601, 0.69098, 0.84357]
    np.testing.assert_allclose(euler_schedule(10)[:, 0], ts, atol=1e-5)
    assert abs(float(euler_schedule(10)[:, 1].sum()) - 1.0) < 1e-6


def test_full_cfm_solve_with_injected_noise_matches_reference(models):
    dec, flow, _ = models
    codes = np.random.default_rng(0).integers(0, 16384, size=13)
    n_frames = dec.mel_frames(13)
    z = torch.randn(1, dec.n_mels, n_frames)
    with torch.no_grad():
        ref = flow.inference(torch.tensor(codes)[None], torch.zeros(1, 0, dtype=torch.long),
                             torch.zeros(1, 0, dec.n_mels), z).numpy()[0]
    got = dec.token2mel(codes, noise=z.numpy()[0])
    assert got.shape == (dec.n_mels, 89)
    assert rel_l2(ref, got) < 1e-5
    assert rel_l2(ref, dec.token2mel(codes[None], noise=z.numpy())) < 1e-5  # batch axis of 1


@pytest.mark.parametrize("steps", [1, 3])
def test_flow_matching_steps_are_honoured(models, steps):
    """The CFM step count of the decoder (its default, or per call) is the reference's n_timesteps."""
    dec, flow, _ = models
    codes = np.random.default_rng(1).integers(0, 16384, size=9)
    z = torch.randn(1, dec.n_mels, dec.mel_frames(9))
    with torch.no_grad():
        ref = flow.inference(torch.tensor(codes)[None], torch.zeros(1, 0, dtype=torch.long),
                             torch.zeros(1, 0, dec.n_mels), z, n_timesteps=steps).numpy()[0]
    assert rel_l2(ref, dec.token2mel(codes, noise=z.numpy()[0], n_timesteps=steps)) < 1e-5
    fewer = SpeechDecoder(dec.cfg, dec.params, n_timesteps=steps)
    assert rel_l2(ref, fewer.token2mel(codes, noise=z.numpy()[0])) < 1e-5
    assert rel_l2(ref, dec.token2mel(codes, noise=z.numpy()[0])) > 1e-3  # the default (10) differs


def test_flow_with_prompt_matches_reference(models):
    dec, flow, _ = models
    rng = np.random.default_rng(1)
    prompt, codes = rng.integers(0, 16384, size=10), rng.integers(0, 16384, size=10)
    n_frames = dec.mel_frames(20)
    prompt_feat = rng.standard_normal((60, dec.n_mels)).astype(np.float32)
    z = torch.randn(1, dec.n_mels, n_frames)
    with torch.no_grad():
        ref = flow.inference(torch.tensor(codes)[None], torch.tensor(prompt)[None], torch.tensor(prompt_feat)[None],
                             z).numpy()[0].T
    got = dec.flow(np.concatenate([prompt, codes]), prompt_feat, z.numpy())[60:]
    assert rel_l2(ref, got) < 1e-5


def test_sin_squared_is_sin_squared_to_float32_rounding():
    x = np.concatenate([np.linspace(-10, 10, 100001), np.linspace(-SIN_SQUARED_LIMIT, SIN_SQUARED_LIMIT, 100001)])
    x = x.astype(np.float32)
    np.testing.assert_allclose(sin_squared(jnp.asarray(x)), np.sin(x.astype(np.float64)) ** 2, rtol=0, atol=3e-7)


def test_snake_matches_torch_at_small_and_large_inputs():
    """Snake x + sin(a x)^2 / a equals torch's, also where a x passes SIN_SQUARED_LIMIT (jnp.sin there)."""
    alpha = np.array([0.5, 1.0, 3.0], np.float32)
    for top in (20.0, 4 * SIN_SQUARED_LIMIT):
        x = np.linspace(-top, top, 3001, dtype=np.float32)[:, None] * np.ones(3, np.float32)
        xt, at = torch.from_numpy(x), torch.from_numpy(alpha)
        want = (xt + (1.0 / (at + 1e-9)) * torch.sin(xt * at) ** 2).numpy()
        np.testing.assert_allclose(snake(jnp.asarray(x), jnp.asarray(alpha)), want, rtol=1e-6, atol=1e-6)


def test_stft_and_istft_match_torch():
    x = torch.randn(1, 1024)
    win = torch.hann_window(16)
    spec = torch.stft(x, 16, 4, 16, window=win, return_complex=True)
    ref = torch.cat([spec.real, spec.imag], dim=1).numpy().transpose(0, 2, 1)
    assert rel_l2(ref, stft(jnp.asarray(x.numpy()), 16, 4)) < 1e-6
    mag, phase = torch.rand(1, 9, 65) * 3, torch.randn(1, 9, 65)
    ref_wav = torch.istft(torch.complex(mag * torch.cos(phase), mag * torch.sin(phase)), 16, 4, 16, window=win)
    got = istft(channels_last(mag), channels_last(phase), 16, 4)
    assert rel_l2(ref_wav.numpy(), got) < 1e-6


def test_hift_matches_reference_with_injected_phases_and_noise(models):
    dec, _, hift = models
    n_frames, harmonics = 9, dec.cfg.hift.nb_harmonics + 1
    torch.manual_seed(3)
    mel = torch.randn(1, dec.n_mels, n_frames)
    phase = (torch.rand(1, harmonics) * 2 - 1) * np.pi
    phase[:, 0] = 0
    noise = torch.randn(1, harmonics, n_frames * 256)
    cache = torch.randn(1, 1, 256) * 0.1
    with torch.no_grad():
        ref_f0 = hift.f0_predictor(mel).numpy()
        ref_wav, ref_src = hift.inference(mel, phase, noise, cache)
    gen, p = HiFTGenerator(dec.cfg.hift), {"params": dec.params["hift"]}
    f0 = jax.jit(lambda p, m: gen.apply(p, m, method="predict_f0"))(p, channels_last(mel))
    assert rel_l2(ref_f0, f0) < TOL
    wav, src = jax.jit(gen.apply)(p, channels_last(mel), jnp.asarray(phase.numpy()), channels_last(noise),
                                  jnp.asarray(cache[:, 0].numpy()))
    assert rel_l2(ref_src[:, 0].numpy(), src) < TOL
    assert rel_l2(ref_wav.numpy(), wav) < TOL
    # the public entry point with the source injected
    got = dec.mel2wav(mel.numpy()[0], source=ref_src[:, 0].numpy())
    assert got.shape == (256 * n_frames,)
    assert rel_l2(ref_wav.numpy()[0], got) < TOL
