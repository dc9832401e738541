"""Cross-entropy of the backbone head and the K MCTP heads on packed rows (spec sections 5 and 6).

Head 0 is the backbone (logits at j predict x_{j+1}); head k+1 is MCTP module k (logits at pair j
predict x_{j+k+2}). A target counts when it has a label (!= -100) and lies in the same packed
sample as position j. Loss = CE_main + (w / K) * sum_k CE_k, CE_main left out when the backbone
is frozen. All heads go through one fused cross-entropy over the shared lm_head
(train/fused_cross_entropy.py): float32 log-sum-exp over token chunks and vocabulary blocks,
no [B, T, vocab] array stored.
"""

import jax
import jax.numpy as jnp

from vita_jax.data.chat_template import IGNORE
from vita_jax.nn.dtypes import as_dtype
from vita_jax.nn.vita_audio import pair_segment_ids, shift_left
from vita_jax.train.fused_cross_entropy import FusedLossSettings, fused_cross_entropy


def head_offsets(num_modules, main_head):
    """Target offset of each head that enters the loss: 1 for the backbone, k+2 for module k."""
    return ([1] if main_head else []) + [k + 2 for k in range(num_modules)]


def head_targets(labels, segment_ids, offset):
    """(targets [B, T], valid [B, T]): labels[j + offset] where it counts for position j."""
    targets = shift_left(labels, offset, fill=IGNORE)
    same_sample = pair_segment_ids(segment_ids, offset) != 0
    valid = same_sample & (targets != IGNORE)
    return jnp.where(valid, targets, 0), valid


def head_counts(batch, offsets):
    """Number of counted targets of each head [H] (float32)."""
    return jnp.stack([head_targets(batch["labels"], batch["segment_ids"], o)[1].sum() for o in offsets]).astype(
        jnp.float32)


def head_sums(module, params, batch, num_modules, main_head, detach_backbone, hidden_sharding=None, loss_chunk=0,
              vocab_block=FusedLossSettings.vocab_block):
    """(summed NLL [H], correct predictions [H]) over the heads of `head_offsets`. `hidden_sharding`
    (a NamedSharding of [B, T, E]) pins the hidden states to the batch layout on a mesh;
    `loss_chunk` / `vocab_block`: token chunk (0 = whole length) and vocabulary block of the fused loss."""
    audio = {}
    if "audio_features" in batch:  # VITA-Audio-Plus: the rows' audio slots, flattened in row order
        features = batch["audio_features"]
        audio = {"features": features.reshape(-1, *features.shape[2:]),
                 "feature_lengths": batch["audio_lengths"].reshape(-1)}
    out = module.apply({"params": params}, batch["input_ids"], segment_ids=batch["segment_ids"],
                       positions=batch["positions"], detach_backbone=detach_backbone, with_logits=False, **audio)
    hiddens = ([out.hidden] if main_head else []) + list(out.mctp_hidden)
    if hidden_sharding is not None:
        hiddens = [jax.lax.with_sharding_constraint(h, hidden_sharding) for h in hiddens]
    targets, valid = zip(*(head_targets(batch["labels"], batch["segment_ids"], o)
                           for o in head_offsets(num_modules, main_head)))
    settings = FusedLossSettings(compute_dtype=as_dtype(module.config.dtype), token_chunk=loss_chunk,
                                 vocab_block=vocab_block, weight_grad=not detach_backbone)
    return fused_cross_entropy(params["backbone"]["lm_head"]["weight"], jnp.stack(hiddens), jnp.stack(targets),
                               jnp.stack(valid), settings)


def combine(nll_sums, counts, num_modules, main_head, mtp_loss_weight):
    """The scalar loss from per-head NLL sums and (global) target counts."""
    per_head = nll_sums / jnp.maximum(counts, 1.0)
    main = per_head[0] if main_head else 0.0
    modules = per_head[1:] if main_head else per_head
    return main + (mtp_loss_weight / num_modules * modules.sum() if num_modules else 0.0)
