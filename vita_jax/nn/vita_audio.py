"""VITA-Audio: the Qwen2 backbone plus K MCTP modules sharing its embedding, final norm and lm_head.

Methods (call through `module.apply(variables, ..., method=...)`):
  __call__        training forward over packed rows: backbone logits and, for each module k,
                  logits for pairs (h^{k-1}_j, x_{j+k+1}) -> x_{j+k+2}.
  backbone_chunk  a chunk of new tokens through the backbone with its static KV cache.
  mctp_chunk      a chunk of new pairs through module k with its own static KV cache.
  module_hidden   module k over whole rows plus the shared final norm (rematerialised as one unit).
  logits          lm_head (float32) of final-normed hidden states.
"""

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp

from vita_jax.nn.attention import PackedCausal, cache_causal_mask
from vita_jax.nn.kv_cache import cache_slots
from vita_jax.nn.mctp import MCTPModule
from vita_jax.nn.qwen2 import Qwen2Backbone
from vita_jax.nn.remat import remat_function
from vita_jax.nn.rotary import rotary_tables


@flax.struct.dataclass
class ForwardOutput:
    """hidden/logits: backbone [B, T, E] / [B, T, V]; mctp_*: one entry per module k, aligned on pair j.
    Logits are None when the forward ran with `with_logits=False`."""

    hidden: jax.Array
    mctp_hidden: list
    logits: jax.Array = None
    mctp_logits: list = None


def shift_left(x, shift, fill=0):
    """x[:, shift:] padded at the end with `fill` back to the original length (axis 1)."""
    keep = x[:, shift:]
    pad = jnp.full((x.shape[0], x.shape[1] - keep.shape[1], *x.shape[2:]), fill, x.dtype)
    return jnp.concatenate([keep, pad], axis=1)


def pair_segment_ids(segment_ids, shift):
    """Segment id of position j where position j+shift lies in the same sample, else 0 (padding)."""
    return jnp.where(shift_left(segment_ids, shift) == segment_ids, segment_ids, 0)


class VitaAudio(nn.Module):
    config: object

    def setup(self):
        self.backbone = Qwen2Backbone(self.config)
        self.mctp = [MCTPModule(self.config) for _ in range(self.config.num_mctp_modules)]  # mctp_0, mctp_1, ...

    def _rotary(self, positions):
        return rotary_tables(positions, self.config.head_dim, self.config.rope_theta)

    def __call__(self, input_ids, segment_ids=None, positions=None, detach_backbone=False, with_logits=True,
                 input_embeddings=None):
        """input_ids [B, T]; segment_ids [B, T] (0 = padding; default all 1); positions [B, T]
        (default 0..T-1; restart at 0 per packed sample). With `detach_backbone` the backbone's
        hidden states and embeddings enter the modules under stop-gradient. `input_embeddings`
        [B, T, E] replace E[input_ids] for the backbone only (the modules always embed the ids)."""
        if segment_ids is None:
            segment_ids = jnp.ones_like(input_ids)
        if positions is None:
            positions = jnp.broadcast_to(jnp.arange(input_ids.shape[1]), input_ids.shape)
        embeddings = self.backbone.embed(input_ids)
        x, _ = self.backbone.run_layers(embeddings if input_embeddings is None else input_embeddings,
                                        *self._rotary(positions), PackedCausal(segment_ids))
        hidden = self.backbone.final_norm(x)

        prev, mctp_hidden = hidden, []
        if detach_backbone:
            prev, embeddings = jax.lax.stop_gradient(prev), jax.lax.stop_gradient(embeddings)
        for k in range(len(self.mctp)):
            shift = k + 1
            # one rematerialised unit per module: projection, norms, layer and the shared final norm
            def module_hidden(model, *args, k=k):
                return model.module_hidden(k, *args)

            prev = remat_function(module_hidden, self.config.remat_policy)(
                self, shift_left(embeddings, shift), prev, *self._rotary(shift_left(positions, shift)),
                PackedCausal(pair_segment_ids(segment_ids, shift)))
            mctp_hidden.append(prev)

        if not with_logits:
            return ForwardOutput(hidden=hidden, mctp_hidden=mctp_hidden)
        return ForwardOutput(
            hidden=hidden, mctp_hidden=mctp_hidden,
            logits=self.backbone.logits(hidden), mctp_logits=[self.backbone.logits(h) for h in mctp_hidden],
        )

    def module_hidden(self, k, token_embeddings, prev_hidden, cos, sin, mask):
        """Final-normed h^k of module k over whole rows (the training forward's unit of remat)."""
        out, _ = self.mctp[k](token_embeddings, prev_hidden, cos, sin, mask)
        return self.backbone.final_norm(out)

    def _chunk_inputs(self, length, chunk, kv_buffers, position_offset):
        """Rotary tables and mask for a chunk written at slots length[b] + 0..chunk-1, whose
        rotary positions are those slots + position_offset."""
        positions = length[:, None] + jnp.arange(chunk)[None, :] + position_offset
        return (*self._rotary(positions), cache_causal_mask(length, chunk, cache_slots(kv_buffers)))

    def backbone_chunk(self, tokens, valid, cache, input_embeddings=None):
        """tokens/valid [B, C] (valid entries form a prefix of each row) continue each row at
        cache["length"]; `input_embeddings` [B, C, E] replace E[tokens] when given.
        Returns (final-normed hidden [B, C, E], updated cache)."""
        length = cache["length"]
        cos, sin, mask = self._chunk_inputs(length, tokens.shape[1], cache["layers"], 0)
        x = self.backbone.embed(tokens) if input_embeddings is None else input_embeddings
        x, layers = self.backbone.run_layers(x, cos, sin, mask, cache["layers"], length)
        return self.backbone.final_norm(x), {"layers": layers, "length": _advance(length, valid)}

    def mctp_chunk(self, k, tokens, prev_hidden, valid, cache):
        """Module k over new pairs j = cache["length"] + 0..C-1: tokens are x_{j+k+1} [B, C], prev_hidden
        h^{k-1}_j [B, C, E]. Returns (final-normed h^k_j [B, C, E], updated cache)."""
        length = cache["length"]
        cos, sin, mask = self._chunk_inputs(length, tokens.shape[1], cache["layer"], k + 1)
        out, layer = self.mctp[k](self.backbone.embed(tokens), prev_hidden, cos, sin, mask, cache["layer"], length)
        return self.backbone.final_norm(out), {"layer": layer, "length": _advance(length, valid)}

    def logits(self, hidden):
        return self.backbone.logits(hidden)


def _advance(length, valid):
    """Cache lengths after a chunk whose real entries are `valid` [B, C]."""
    return length + valid.astype(jnp.int32).sum(axis=1)
