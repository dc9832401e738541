"""The sharded train state {"step", "params", "opt_state"} and the jitted step over it."""

import jax
import jax.numpy as jnp

from vita_jax.sharding import opt_state_shardings, replicated
from vita_jax.train.train_step import make_train_step


def init_train_state(params, tx, mesh):
    """(state, state shardings) for parameters already placed on `mesh`; optimizer state is
    created in place with the parameters' shardings."""
    param_sh = jax.tree.map(lambda x: x.sharding, params)
    opt_sh = opt_state_shardings(jax.eval_shape(tx.init, params), params, param_sh, mesh)
    state_sh = {"step": replicated(mesh), "params": param_sh, "opt_state": opt_sh}
    state = {"step": jax.device_put(jnp.zeros((), jnp.int32), replicated(mesh)), "params": params,
             "opt_state": jax.jit(tx.init, out_shardings=opt_sh)(params)}
    return state, state_sh


def abstract_state(state, state_sh):
    """ShapeDtypeStructs with shardings (the restore target of a checkpoint)."""
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, state_sh)


def jit_train_step(module, tx, labels, loss_cfg, state_sh, mesh, microbatches=1):
    """step(state, batch) -> (state, metrics), jitted with the state's shardings, state donated."""
    return jax.jit(make_train_step(module, tx, labels, loss_cfg, microbatches, mesh),
                   out_shardings=(state_sh, replicated(mesh)), donate_argnums=0)
