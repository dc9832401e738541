"""Training: loss, parameter groups, optimizer, model growth, train step, checkpoints, loop, metrics."""
