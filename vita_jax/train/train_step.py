"""One optimizer step: loss and gradients (optionally accumulated over micro-batches), optax update.

State: {"step": int32, "params": tree, "opt_state": optax state}. Batch: {"input_ids", "labels",
"segment_ids", "positions"} int32 [B, T] (extra fields are ignored). The loss is normalised by
the target counts of the whole batch, so accumulating M micro-batches gives the same gradient
as one pass over the batch. Frozen parameter groups enter the loss under stop-gradient (nothing
computed or kept for their gradients, which are zero). All heads share one fused cross-entropy (token chunks of
`loss_chunk`, vocabulary blocks of `loss_vocab_block`). Metrics: loss, grad_norm (of the trained parameters), per-head
loss and accuracy ("loss/main", "loss/mctp_k", "accuracy/..."), tokens (non-padding).
"""

import dataclasses

import jax
import jax.numpy as jnp
import optax

from vita_jax.sharding import activation_rules, activation_sharding
from vita_jax.train.fused_cross_entropy import FusedLossSettings
from vita_jax.train.loss import combine, head_counts, head_offsets, head_sums
from vita_jax.train.param_groups import ADAPTER, BACKBONE, ENCODER, FROZEN, apply_updates

BATCH_FIELDS = ("input_ids", "labels", "segment_ids", "positions")
AUDIO_FIELDS = ("audio_features", "audio_lengths")  # VITA-Audio-Plus rows (data/packing.py)


def step_inputs(batch):
    """The fields of `batch` a training step reads: BATCH_FIELDS, and AUDIO_FIELDS when present."""
    return {k: batch[k] for k in BATCH_FIELDS + AUDIO_FIELDS if k in batch}


@dataclasses.dataclass(frozen=True)
class LossConfig:
    num_modules: int
    train_backbone: bool  # False: backbone detached, no CE_main (kept when the Plus encoder or adapter trains)
    mtp_loss_weight: float = 1.0
    loss_chunk: int = 0  # token chunk of the fused loss (0 = the whole length)
    loss_vocab_block: int = FusedLossSettings.vocab_block

    @classmethod
    def of(cls, model_config, trainable, mtp_loss_weight, loss_chunk=0,
           loss_vocab_block=FusedLossSettings.vocab_block):
        return cls(model_config.num_mctp_modules, bool({BACKBONE, ENCODER, ADAPTER} & set(trainable)),
                   float(mtp_loss_weight), int(loss_chunk), int(loss_vocab_block))

    @classmethod
    def of_run(cls, cfg, model_config):
        """From a run config (optim.trainable, train.mtp_loss_weight / loss_chunk / loss_vocab_block)."""
        return cls.of(model_config, tuple(cfg.optim.trainable), cfg.train.mtp_loss_weight, cfg.train.loss_chunk,
                      cfg.train.loss_vocab_block)

    @property
    def offsets(self):
        return head_offsets(self.num_modules, self.train_backbone)

    @property
    def head_names(self):
        return (["main"] if self.train_backbone else []) + [f"mctp_{k}" for k in range(self.num_modules)]


def make_train_step(module, tx, labels, loss_cfg, microbatches=1, mesh=None):
    """step(state, batch) -> (state, metrics); pure, to be jitted by the caller. With `mesh`, the
    hidden states are kept split by rows like the batch and the model's activation constraints apply."""
    hidden_sharding = None if mesh is None else activation_sharding(mesh)

    def micro_loss(params, batch, counts):
        # frozen groups enter as constants: no gradient computed, no activations kept for one
        params = jax.tree.map(lambda p, label: jax.lax.stop_gradient(p) if label == FROZEN else p, params, labels)
        nll, correct = head_sums(module, params, batch, loss_cfg.num_modules, loss_cfg.train_backbone,
                                 not loss_cfg.train_backbone, hidden_sharding, loss_cfg.loss_chunk,
                                 loss_cfg.loss_vocab_block)
        loss = combine(nll, counts, loss_cfg.num_modules, loss_cfg.train_backbone, loss_cfg.mtp_loss_weight)
        return loss, (nll, correct)

    grad_fn = jax.value_and_grad(micro_loss, has_aux=True)

    def gradients(params, batch, counts):
        if microbatches == 1:
            return grad_fn(params, batch, counts)
        rows = batch["input_ids"].shape[0]
        if rows % microbatches:
            raise ValueError(f"batch of {rows} rows does not split into {microbatches} micro-batches")
        # micro-batch m takes rows m, m+M, ...: each device keeps working on its own rows
        split = {k: v.reshape(rows // microbatches, microbatches, *v.shape[1:]).swapaxes(0, 1)
                 for k, v in batch.items()}

        def accumulate(carry, micro):
            (loss, (nll, correct)), grads = grad_fn(params, micro, counts)
            return jax.tree.map(jnp.add, carry, ((loss, (nll, correct)), grads)), None

        zero = jax.tree.map(jnp.zeros_like, ((jnp.zeros((), jnp.float32), (counts, counts)), params))
        total, _ = jax.lax.scan(accumulate, zero, split)
        return total

    def step(state, batch):
        if mesh is None:
            return unconstrained_step(state, batch)
        with activation_rules(mesh):
            return unconstrained_step(state, batch)

    def unconstrained_step(state, batch):
        batch = step_inputs(batch)
        params = state["params"]
        counts = head_counts(batch, loss_cfg.offsets)
        (loss, (nll, correct)), grads = gradients(params, batch, counts)
        updates, opt_state = tx.update(grads, state["opt_state"], params)
        trained = jax.tree.map(lambda g, label: None if label == FROZEN else g, grads, labels)
        metrics = {"loss": loss, "grad_norm": optax.tree.norm(trained),
                   "tokens": (batch["segment_ids"] != 0).sum()}
        for i, name in enumerate(loss_cfg.head_names):
            metrics[f"loss/{name}"] = nll[i] / jnp.maximum(counts[i], 1.0)
            metrics[f"accuracy/{name}"] = correct[i] / jnp.maximum(counts[i], 1.0)
        new_state = {"step": state["step"] + 1, "params": apply_updates(params, updates, labels),
                     "opt_state": opt_state}
        return new_state, metrics

    return step
