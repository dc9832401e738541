"""Switch backbone layer parameters between the unrolled layout (backbone/layers_{i}/...) and the
scanned layout (backbone/layers/layer/... with a leading layer axis); `layer_slices` unstacks any
stacked tree."""

import jax
import jax.numpy as jnp


def convert_layer_layout(params, num_layers, scan_layers):
    """Return params in the scanned layout when `scan_layers`, else unrolled (a new tree)."""
    backbone = dict(params["backbone"])
    if scan_layers and "layers" not in backbone:
        per_layer = [backbone.pop(f"layers_{i}") for i in range(num_layers)]
        backbone["layers"] = {"layer": jax.tree.map(lambda *xs: jnp.stack(xs), *per_layer)}
    elif not scan_layers and "layers" in backbone:
        for i, layer in enumerate(layer_slices(backbone.pop("layers")["layer"], num_layers)):
            backbone[f"layers_{i}"] = layer
    return {**params, "backbone": backbone}


def layer_slices(stacked, count):
    """The `count` per-layer trees of a tree whose leaves carry a leading layer axis."""
    return [jax.tree.map(lambda x, i=i: x[i], stacked) for i in range(count)]
