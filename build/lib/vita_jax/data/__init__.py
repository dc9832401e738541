"""Training data: tokenizer extension, chat template, interleaving, labels, packing, grain pipeline."""
