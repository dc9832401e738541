"""Integer rounding up to a multiple (buffer buckets, padded lengths, vocabulary sizes)."""


def round_up(n, multiple):
    """The smallest multiple of `multiple` that is >= n."""
    return -(-n // multiple) * multiple
