"""Grouped-query self-attention with q/k/v biases, rotary embedding and an optional static KV cache.

The mask is either `PackedCausal(segment_ids)` (training over packed rows: causal, inside one
segment, never onto segment 0 = padding) or a dense boolean [B, 1, T_query, T_key] (decoding
over a cache; True = may attend). `dot_product_attention` runs the core on the implementation
the model config names (`attention`): "xla" stores the [heads, T, T] scores (the reference),
"chunked" an online-softmax XLA loop over query and key blocks that never stores them (any
backend; rows of at most one block take the reference), "cudnn" jax.nn.dot_product_attention's flash kernel (GPU), "splash" the Pallas
splash-attention kernel (TPU); "auto" picks splash / cudnn / chunked by backend. Dense masks
(decoding) always take the "xla" path, so the cache semantics do not change.
"""


import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.ad_checkpoint import checkpoint_name
from jax.sharding import PartitionSpec

from vita_jax.nn.rotary import apply_rotary
from vita_jax.sharding import constrain

ATTENTION_IMPLS = ("auto", "xla", "chunked", "cudnn", "splash")
AUTO_BY_BACKEND = {"tpu": "splash", "gpu": "cudnn", "cuda": "cudnn", "rocm": "cudnn"}
CHUNK = 512  # query and key block of the chunked path
SPLASH_BLOCK = 128  # splash attention runs on lengths that are multiples of this (else: chunked)


@flax.struct.dataclass
class PackedCausal:
    """Training mask, kept as segment ids [B, T] (0 = padding) instead of a [B, 1, T, T] array."""

    segment_ids: jax.Array


def packed_causal_mask(segment_ids):
    """Training mask: causal, inside the same segment, never onto segment 0 (padding)."""
    length = segment_ids.shape[1]
    causal = jnp.tril(jnp.ones((length, length), dtype=bool))
    same = segment_ids[:, :, None] == segment_ids[:, None, :]
    real_key = (segment_ids != 0)[:, None, :]
    return (causal[None] & same & real_key)[:, None]


def cache_causal_mask(cache_length, chunk_length, cache_size):
    """Decoding mask for a chunk written at slots cache_length[b] + i: query i sees slots <= that."""
    query_slot = cache_length[:, None] + jnp.arange(chunk_length)[None, :]
    return (jnp.arange(cache_size)[None, None, :] <= query_slot[:, :, None])[:, None]


def write_to_cache(cache, new, start):
    """Write `new` [B, C, ...] into `cache` [B, S, ...] at per-row offsets `start` [B]."""
    def write_row(row_cache, row_new, row_start):
        return jax.lax.dynamic_update_slice_in_dim(row_cache, row_new.astype(row_cache.dtype), row_start, axis=0)

    return jax.vmap(write_row)(cache, new, start)


def resolve_attention(name, backend=None):
    """The implementation `name` stands for on `backend` (default: jax's); a clear error for unknown names."""
    if name not in ATTENTION_IMPLS:
        raise ValueError(f"unknown attention {name!r}; choose one of {', '.join(ATTENTION_IMPLS)}")
    if name != "auto":
        return name
    return AUTO_BY_BACKEND.get(backend or jax.default_backend(), "chunked")


def dot_product_attention(q, k, v, mask, impl="auto"):
    """q [B, T, H, D], k/v [B, S, KV, D] (H a multiple of KV; query head h reads kv head h // (H/KV)),
    mask PackedCausal or dense bool [B, 1, T, S]. Returns [B, T, H, D] in v's dtype."""
    if not isinstance(mask, PackedCausal):
        return _xla_attention(q, k, v, mask)
    impl = resolve_attention(impl)
    if impl == "xla":
        return _xla_attention(q, k, v, packed_causal_mask(mask.segment_ids))
    if impl == "chunked" and max(q.shape[1], k.shape[1]) > CHUNK:
        return _chunked_attention(q, k, v, mask.segment_ids)
    if impl == "chunked":  # one block: the reference is the same computation, without the loop
        return _xla_attention(q, k, v, packed_causal_mask(mask.segment_ids))
    if impl == "cudnn":
        return _cudnn_attention(q, k, v, mask.segment_ids)
    if q.shape[1] % SPLASH_BLOCK:  # the kernel's blocks must tile the row (short inputs: parameter init)
        return _chunked_attention(q, k, v, mask.segment_ids)
    return _splash_attention(q, k, v, mask.segment_ids)


def _grouped(q, num_kv_heads):
    batch, length, heads, dim = q.shape
    return q.reshape(batch, length, num_kv_heads, heads // num_kv_heads, dim)


def _xla_attention(q, k, v, mask):
    """Scores [B, KV, G, T, S] in float32, masked, softmax: the reference (and the decode path)."""
    batch, length, heads, dim = q.shape
    scores = jnp.einsum("btkgd,bskd->bkgts", _grouped(q, k.shape[2]), k, preferred_element_type=jnp.float32)
    scores = jnp.where(mask[:, :, None], scores * dim ** -0.5, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
    return jnp.einsum("bkgts,bskd->btkgd", probs, v).reshape(batch, length, heads, dim)


def _blocks(length):
    """Block size for `length`: CHUNK when it divides, else the whole length (one block)."""
    return CHUNK if length % CHUNK == 0 else length


def _chunked_attention(q, k, v, segment_ids):
    """Online softmax over key blocks inside a loop over query blocks; each query block is
    rematerialised in the backward pass, so no [T, S] array is ever stored."""
    batch, length, heads, dim = q.shape
    kv_heads = k.shape[2]
    qb, kb = _blocks(length), _blocks(k.shape[1])
    positions = jnp.arange(length)
    key_blocks = (k.reshape(batch, -1, kb, kv_heads, dim).swapaxes(0, 1),
                  v.reshape(batch, -1, kb, kv_heads, dim).swapaxes(0, 1),
                  segment_ids.reshape(batch, -1, kb).swapaxes(0, 1), positions.reshape(-1, kb))

    @jax.checkpoint
    def query_block(q_blk, q_seg, q_pos):
        q_blk = _grouped(q_blk, kv_heads)

        def key_block(carry, blk):
            out, row_max, row_sum = carry
            k_blk, v_blk, k_seg, k_pos = blk
            scores = jnp.einsum("btkgd,bskd->bkgts", q_blk, k_blk, preferred_element_type=jnp.float32) * dim ** -0.5
            allowed = ((q_pos[:, None] >= k_pos[None, :])[None] & (q_seg[:, :, None] == k_seg[:, None, :])
                       & (k_seg != 0)[:, None, :])[:, None, None]
            scores = jnp.where(allowed, scores, -jnp.inf)
            new_max = jnp.maximum(row_max, scores.max(axis=-1))
            safe_max = jnp.where(jnp.isfinite(new_max), new_max, 0.0)
            probs = jnp.exp(scores - safe_max[..., None])
            scale = jnp.exp(jnp.where(jnp.isfinite(row_max), row_max, safe_max) - safe_max)
            out = out * scale[..., None] + jnp.einsum("bkgts,bskd->bkgtd", probs.astype(v_blk.dtype), v_blk,
                                                      preferred_element_type=jnp.float32)
            return (out, new_max, row_sum * scale + probs.sum(axis=-1)), None

        shape = (batch, kv_heads, heads // kv_heads, q_blk.shape[1])
        init = (jnp.zeros((*shape, dim), jnp.float32), jnp.full(shape, -jnp.inf), jnp.zeros(shape, jnp.float32))
        (out, _, row_sum), _ = jax.lax.scan(key_block, init, key_blocks)
        # rows with no allowed key (padding) give 0, as the reference's uniform average of masked
        # keys does not matter there: their outputs are never counted
        out = out / jnp.where(row_sum > 0, row_sum, 1.0)[..., None]
        return jnp.einsum("bkgtd->btkgd", out).reshape(batch, -1, heads, dim).astype(v.dtype)

    blocks = (q.reshape(batch, -1, qb, heads, dim).swapaxes(0, 1),
              segment_ids.reshape(batch, -1, qb).swapaxes(0, 1), positions.reshape(-1, qb))
    out = jax.lax.map(lambda blk: query_block(*blk), blocks)
    return out.swapaxes(0, 1).reshape(batch, length, heads, dim)


def _cudnn_attention(q, k, v, segment_ids):
    """cuDNN flash attention; packed rows pass as a boolean mask (jax.nn.dot_product_attention takes
    no segment ids), which cuDNN applies blockwise without storing the scores."""
    mask = packed_causal_mask(segment_ids)
    return jax.nn.dot_product_attention(q, k, v, mask=mask, implementation="cudnn").astype(v.dtype)


def _splash_attention(q, k, v, segment_ids):
    """Pallas splash attention (TPU): causal mask + segment ids, heads-major layout, vmapped over rows;
    under a mesh (jax.set_mesh) it runs per device with rows split like the batch and heads over `tensor`."""
    from jax.experimental.pallas.ops.tpu import splash_attention as splash

    length, dim = q.shape[1], q.shape[3]
    mesh = jax.sharding.get_abstract_mesh()
    sharded = not mesh.empty and "tensor" in mesh.axis_names

    def local(q, k, v, segment_ids):
        local_heads = q.shape[2]
        mask = splash.MultiHeadMask([splash.CausalMask((length, k.shape[1]))] * local_heads)
        kernel = splash.make_splash_mha(mask, head_shards=1, q_seq_shards=1)
        scaled = (q * dim ** -0.5).astype(q.dtype)

        def row(q, k, v, seg):
            seg = splash.SegmentIds(q=seg, kv=seg)
            return kernel(q.swapaxes(0, 1), k.swapaxes(0, 1), v.swapaxes(0, 1), segment_ids=seg).swapaxes(0, 1)

        # padding (segment 0) attends to padding inside the kernel; those rows are never counted
        return jax.vmap(row)(scaled, k, v, segment_ids).astype(v.dtype)

    if not sharded:
        return local(q, k, v, segment_ids)
    rows = tuple(a for a in ("data", "fsdp") if a in mesh.axis_names)
    heads_spec = PartitionSpec(rows, None, "tensor", None)
    return jax.shard_map(local, mesh=mesh, in_specs=(heads_spec, heads_spec, heads_spec, PartitionSpec(rows, None)),
                         out_specs=heads_spec, check_vma=False)(q, k, v, segment_ids)


class Attention(nn.Module):
    num_heads: int
    num_kv_heads: int
    head_dim: int
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    impl: str = "auto"

    @nn.compact
    def __call__(self, x, cos, sin, mask, kv_cache=None, cache_length=None):
        """x [B, T, E]; returns (output [B, T, E], updated kv_cache or None).

        With `kv_cache` ({"k", "v"}: [B, S, kv_heads, head_dim]) the new keys/values are
        written at slots cache_length[b] + 0..T-1 and attention runs over all S slots.
        """
        def projection(heads, axes, name, bias=True, axis=-1, features=None):
            return nn.DenseGeneral(
                features=features or (heads, self.head_dim), axis=axis, use_bias=bias, dtype=self.dtype,
                param_dtype=self.param_dtype, name=name,
                kernel_init=nn.with_logical_partitioning(nn.initializers.lecun_normal(), axes),
                bias_init=nn.with_logical_partitioning(nn.initializers.zeros, axes[1:]),
            )

        q = checkpoint_name(projection(self.num_heads, ("embed", "heads", "head_dim"), "q_proj")(x), "q_proj")
        k = checkpoint_name(projection(self.num_kv_heads, ("embed", "kv_heads", "head_dim"), "k_proj")(x), "k_proj")
        v = checkpoint_name(projection(self.num_kv_heads, ("embed", "kv_heads", "head_dim"), "v_proj")(x), "v_proj")
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        q = constrain(q, ("batch", "length", "heads", "head_dim"))
        k = constrain(k, ("batch", "length", "kv_heads", "head_dim"))

        new_cache = None
        if kv_cache is not None:
            new_cache = {"k": write_to_cache(kv_cache["k"], k, cache_length),
                         "v": write_to_cache(kv_cache["v"], v, cache_length)}
            k, v = new_cache["k"].astype(self.dtype), new_cache["v"].astype(self.dtype)

        out = dot_product_attention(q, k, v, mask, self.impl)
        out = constrain(out, ("batch", "length", "heads", "head_dim"))
        out = projection(None, ("heads", "head_dim", "embed"), "o_proj", bias=False, axis=(-2, -1),
                         features=x.shape[-1])(out)
        return checkpoint_name(out, "o_proj"), new_cache
