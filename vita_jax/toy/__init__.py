"""The toy MCTP experiment: the trained toy checkpoint and its evaluation (docs/toy-mctp.md)."""
