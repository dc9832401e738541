"""Switch backbone layer parameters between the unrolled layout (backbone/layers_{i}/...) and the
scanned layout (backbone/layers/layer/... with a leading layer axis)."""

import jax
import jax.numpy as jnp


def convert_layer_layout(params, num_layers, scan_layers):
    """Return params in the scanned layout when `scan_layers`, else unrolled (a new tree)."""
    backbone = dict(params["backbone"])
    if scan_layers and "layers" not in backbone:
        per_layer = [backbone.pop(f"layers_{i}") for i in range(num_layers)]
        backbone["layers"] = {"layer": jax.tree.map(lambda *xs: jnp.stack(xs), *per_layer)}
    elif not scan_layers and "layers" in backbone:
        stacked = backbone.pop("layers")["layer"]
        for i in range(num_layers):
            backbone[f"layers_{i}"] = jax.tree.map(lambda x, i=i: x[i], stacked)
    return {**params, "backbone": backbone}
