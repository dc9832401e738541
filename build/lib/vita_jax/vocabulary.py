"""Token ids of the VITA-Audio vocabulary (spec section 1): Qwen2.5 BPE + specials + 16384 audio codes."""

END_OF_TEXT = 151643   # <|endoftext|>
IM_START = 151644      # <|im_start|>
IM_END = 151645        # <|im_end|>
EOS_TOKEN_IDS = (IM_END, END_OF_TEXT)  # chat generation stops on either
BASE_VOCAB_SIZE = 151665
EXTRA_SPECIAL_TOKENS = (
    "<|begin_of_image|>", "<|end_of_image|>", "<|context_of_image|>",
    "<|begin_of_video|>", "<|end_of_video|>", "<|context_of_video|>",
    "<|begin_of_patch|>", "<|end_of_patch|>", "<|context_of_patch|>",
    "<|begin_of_audio|>", "<|end_of_audio|>", "<|begin_of_quad|>", "<|end_of_quad|>",
    "<|begin_of_ref|>", "<|end_of_ref|>", "<|begin_of_box|>", "<|end_of_box|>",
    "<|image|>", "<|video|>", "<|audio|>",
)
BEGIN_OF_AUDIO = BASE_VOCAB_SIZE + EXTRA_SPECIAL_TOKENS.index("<|begin_of_audio|>")  # 151674
END_OF_AUDIO = BASE_VOCAB_SIZE + EXTRA_SPECIAL_TOKENS.index("<|end_of_audio|>")      # 151675
AUDIO_TOKEN = BASE_VOCAB_SIZE + EXTRA_SPECIAL_TOKENS.index("<|audio|>")              # 151684
AUDIO_OFFSET = BASE_VOCAB_SIZE + len(EXTRA_SPECIAL_TOKENS)                           # <|audio_0|> = 151685
NUM_AUDIO_CODES = 16384
PADDED_VOCAB_SIZE = 168072  # AUDIO_OFFSET + 16384 = 168069, rounded up to a multiple of 8


def vocabulary_metadata(vocab_size):
    """What a checkpoint records about its vocabulary."""
    meta = {"vocab_size": vocab_size}
    if vocab_size == PADDED_VOCAB_SIZE:
        meta.update(eos_token_ids=list(EOS_TOKEN_IDS), begin_of_audio=BEGIN_OF_AUDIO,
                    end_of_audio=END_OF_AUDIO, audio_offset=AUDIO_OFFSET, num_audio_codes=NUM_AUDIO_CODES)
    return meta
