"""Flax (Linen) modules of the Qwen2 backbone and the MCTP stack."""
