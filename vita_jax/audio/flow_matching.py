"""Token-rate -> mel-rate length regulator and the conditional flow-matching (CFM) Euler sampler.

Spec sections 3.2 and 4: `InterpolateRegulator` (legacy-nearest resize, conv/GroupNorm(1)/Mish
stack) and `ConditionalCFM.solve_euler` with the cosine time schedule and classifier-free
guidance, whose conditional and unconditional passes run as one batch of two.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vita_jax.audio.decoder_layers import Conv1d, GroupNorm, length_mask, mish

MEL_SAMPLE_RATE, MEL_HOP = 22050, 256  # the constants of the original length formula


def mel_length(n_tokens, token_rate):
    """Mel frames for `n_tokens`: int(float32(N) / rate * 22050 / 256), in float32 like the reference."""
    x = np.float32(n_tokens) / np.float32(token_rate)
    return int(np.float32(np.float32(x * np.float32(MEL_SAMPLE_RATE)) / np.float32(MEL_HOP)))


def nearest_resize_indices(n_in, n_out, out_size):
    """Legacy-nearest source index of each of `out_size` frames: min(floor(j * f32(n_in)/f32(n_out)), n_in-1).

    `n_in`, `n_out` may be traced scalars (valid lengths inside a padded buffer).
    """
    scale = jnp.asarray(n_in, jnp.float32) / jnp.asarray(n_out, jnp.float32)
    j = jnp.arange(out_size, dtype=jnp.float32)
    return jnp.minimum(jnp.floor(j * scale).astype(jnp.int32), jnp.asarray(n_in, jnp.int32) - 1)


class LengthRegulator(nn.Module):
    """h [B, L, C] (valid length `n_in`) -> mu [B, T, C] (valid length `n_out`, zero beyond)."""

    channels: int
    num_blocks: int

    @nn.compact
    def __call__(self, h, n_in, n_out, out_size):
        y = jnp.take(h, nearest_resize_indices(n_in, n_out, out_size), axis=1)
        mask = length_mask(out_size, n_out)
        for i in range(self.num_blocks):
            y = Conv1d(self.channels, 3, padding=1, name=f"model.{3 * i}")(y * mask)
            y = mish(GroupNorm(1, name=f"model.{3 * i + 1}")(y, mask))
        return Conv1d(self.channels, 1, name=f"model.{3 * self.num_blocks}")(y * mask) * mask


def euler_schedule(n_timesteps):
    """(t_k, dt_k) for k = 1..n in float32, by the reference recurrence t += dt; dt = ts[k+1] - t."""
    ts = np.linspace(0, 1, n_timesteps + 1).astype(np.float32)
    ts = (np.float32(1) - np.cos(ts * np.float32(0.5 * np.pi))).astype(np.float32)
    t, dt = ts[0], np.float32(ts[1] - ts[0])
    steps = []
    for k in range(1, n_timesteps + 1):
        steps.append((t, dt))
        t = np.float32(t + dt)
        if k < n_timesteps:
            dt = np.float32(ts[k + 1] - t)
    return np.array(steps, dtype=np.float32)


def solve_cfm(estimate, noise, mu, mask, spks, cond, n_timesteps, cfg_rate):
    """Integrate dx/dt = (1+r) v(x | mu, spks, cond) - r v(x | 0, 0, 0) from `noise` at t=0 to t=1.

    `estimate(x, mask, mu, t, spks, cond)` is the estimator on a batch; the conditional and
    unconditional branches are stacked into one batch of 2B per step. Shapes: noise, mu, cond
    [B, T, C], mask [B, T, 1], spks [B, C]. Returns x at t=1, [B, T, C].
    """
    b = noise.shape[0]
    mu2 = jnp.concatenate([mu, jnp.zeros_like(mu)])
    spks2 = jnp.concatenate([spks, jnp.zeros_like(spks)])
    cond2 = jnp.concatenate([cond, jnp.zeros_like(cond)])
    mask2 = jnp.concatenate([mask, mask])

    def step(x, t_dt):
        t, dt = t_dt[0], t_dt[1]
        v = estimate(jnp.concatenate([x, x]), mask2, mu2, jnp.full((2 * b,), t), spks2, cond2)
        v = (1.0 + cfg_rate) * v[:b] - cfg_rate * v[b:]
        return x + dt * v, None

    x, _ = jax.lax.scan(step, noise, jnp.asarray(euler_schedule(n_timesteps)))
    return x
