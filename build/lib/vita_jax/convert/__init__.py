"""Checkpoint mapping between this project's parameter trees and the original layouts:
the Hugging Face LLM (`hf_checkpoint`), the GLM-4-Voice speech tokenizer (`tokenizer_checkpoint`)
and speech decoder (`decoder_checkpoint`). The command lines that call it live in `conversion/`."""
