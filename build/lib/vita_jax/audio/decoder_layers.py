"""1-D layers shared by the flow model and the HiFT vocoder, channels-last [B, T, C].

Parameter names are chosen so that `conversion/decoder_checkpoint.py` can map them
mechanically to the PyTorch state dict: `kernel` (conv [k, in, out] or dense [in, out]),
`transpose_kernel` (transposed conv [k, in, out], taps in PyTorch order), `weight_g` /
`weight_v` (weight norm, kept in PyTorch layout and folded in the forward exactly as
`torch.nn.utils.weight_norm` does), `scale`/`bias` (norms).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax


def mish(x):
    return x * jnp.tanh(jax.nn.softplus(x))


def conv1d(x, kernel, bias, stride=1, padding=0, dilation=1):
    """PyTorch Conv1d on [B, T, C_in] with kernel [k, C_in, C_out] and symmetric zero padding."""
    y = lax.conv_general_dilated(
        x, kernel, window_strides=(stride,), padding=[(padding, padding)], rhs_dilation=(dilation,),
        dimension_numbers=("NWC", "WIO", "NWC"),
    )
    return y if bias is None else y + bias


def conv_transpose1d(x, kernel, bias, stride, padding):
    """PyTorch ConvTranspose1d on [B, T, C_in]; `kernel` [k, C_in, C_out] (kernel[j] = W[:, :, j]).

    Polyphase form (k a multiple of the stride): one matmul per tap group then an overlap-add,
    instead of a convolution over a zero-stuffed input. Output length (T-1)*stride - 2*padding + k.
    """
    k, _, c_out = kernel.shape
    b, t, _ = x.shape
    if k % stride:
        raise ValueError(f"conv_transpose1d: kernel size {k} must be a multiple of the stride {stride}")
    m = k // stride
    z = jnp.einsum("bti,kio->btko", x, kernel).reshape(b, t, m, stride, c_out)
    full = sum(jnp.pad(z[:, :, q], ((0, 0), (q, m - 1 - q), (0, 0), (0, 0))) for q in range(m))
    full = full.reshape(b, (t + m - 1) * stride, c_out)
    y = full[:, padding: full.shape[1] - padding]
    return y if bias is None else y + bias


def group_norm(x, num_groups, scale, bias, mask=None, eps=1e-5):
    """torch GroupNorm on [B, T, C]: statistics over (time, channels of the group) per sample.

    `mask` [B, T, 1] restricts the statistics to valid frames (equal to running the unpadded
    sequence); None uses every frame.
    """
    b, t, c = x.shape
    xg = x.reshape(b, t, num_groups, c // num_groups)
    if mask is None:
        mean = xg.mean(axis=(1, 3), keepdims=True)
        var = jnp.square(xg - mean).mean(axis=(1, 3), keepdims=True)
    else:
        m = mask.reshape(b, t, 1, 1)
        count = m.sum(axis=1, keepdims=True) * (c // num_groups)
        mean = (xg * m).sum(axis=(1, 3), keepdims=True) / count
        var = (jnp.square(xg - mean) * m).sum(axis=(1, 3), keepdims=True) / count
    y = ((xg - mean) * lax.rsqrt(var + eps)).reshape(b, t, c)
    return y * scale + bias


class GroupNorm(nn.Module):
    num_groups: int
    eps: float = 1e-5

    @nn.compact
    def __call__(self, x, mask=None):
        c = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (c,))
        bias = self.param("bias", nn.initializers.zeros, (c,))
        return group_norm(x, self.num_groups, scale, bias, mask, self.eps)


def _weight_norm_kernel(module, torch_shape):
    """weight_g [d0, 1, 1] and weight_v `torch_shape` params; the folded weight, torch layout."""
    v = module.param("weight_v", nn.initializers.normal(0.02), torch_shape)
    g = module.param("weight_g", lambda key, shape: jnp.sqrt(jnp.sum(jnp.square(v), axis=(1, 2), keepdims=True)),
                     (torch_shape[0], 1, 1))
    return v * (g / jnp.sqrt(jnp.sum(jnp.square(v), axis=(1, 2), keepdims=True)))


class Conv1d(nn.Module):
    """nn.Conv1d; `weight_norm=True`: under torch.nn.utils.weight_norm (norm per output channel)."""

    features: int
    kernel_size: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    weight_norm: bool = False

    @nn.compact
    def __call__(self, x):
        if self.weight_norm:
            w = _weight_norm_kernel(self, (self.features, x.shape[-1], self.kernel_size))  # (out, in, k)
            kernel = jnp.transpose(w, (2, 1, 0))
        else:
            kernel = self.param("kernel", nn.initializers.lecun_normal(),
                                (self.kernel_size, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        return conv1d(x, kernel, bias, self.stride, self.padding, self.dilation)


class ConvTranspose1d(nn.Module):
    """nn.ConvTranspose1d; `weight_norm=True`: norm per INPUT channel (dim 0 of the (in, out, k) weight)."""

    features: int
    kernel_size: int
    stride: int
    padding: int
    weight_norm: bool = False

    @nn.compact
    def __call__(self, x):
        if self.weight_norm:
            w = _weight_norm_kernel(self, (x.shape[-1], self.features, self.kernel_size))  # (in, out, k)
            kernel = jnp.transpose(w, (2, 0, 1))
        else:
            kernel = self.param("transpose_kernel", nn.initializers.lecun_normal(),
                                (self.kernel_size, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        return conv_transpose1d(x, kernel, bias, self.stride, self.padding)


def length_mask(length, n_valid):
    """[1, length, 1] float32 mask of the first `n_valid` (may be traced) positions."""
    return (jnp.arange(length) < n_valid).astype(jnp.float32)[None, :, None]
