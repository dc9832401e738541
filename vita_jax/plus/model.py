"""The user-facing VITA-Audio-Plus model: speech in through the SenseVoice encoder + adapter.

    from vita_jax.plus import load_plus
    m = load_plus("VITA-Audio-Plus-Boost")            # Plus HF folder or this project's checkpoint
    m.features(wav_16k)                                # [T, 560] float32
    m.encode(wav_16k)                                  # [T + 4, H]: encoder + adapter
    ids = m.audio_prompt(ids_with_audio_tags, [wav])   # each <|audio|> -> begin, (T+4) placeholders, end
    out = m.forward(ids, audios=[wav])                 # .logits [B, S, V], .mctp_logits (as the base model)
    m.generate(ids, audios=[wav], mode="boost")        # every decoding mode; the encoder runs once, at prefill
    for event in m.stream(ids, audios=[wav], mode="turbo", tokenizer=tok): ...

The k-th run of `<|context_of_audio|>` placeholders (counted row by row over the batch) takes
`audios[k]`; each run must hold T_k + 4 placeholders. Audios are 16 kHz float waves in [-1, 1]
(`sample_rate=` for others; [channels, samples] arrays are mixed down) or audio file paths.
"""

import dataclasses
import functools
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vita_jax import param_checkpoint
from vita_jax.audio.wav_io import AudioLoadError
from vita_jax.convert.hf_checkpoint import read_hf_config
from vita_jax.convert.plus_checkpoint import (
    CMVN_FILE, PLUS_MODEL_TYPE, copy_plus_side_files, export_plus_hf, import_plus_hf, read_plus_tokens,
)
from vita_jax.decode.decoder import decode, prompt_rows, stream
from vita_jax.model import SIDE_FILES_DIR, VitaAudioModel, checked_input_ids, read_model_checkpoint
from vita_jax.param_storage import read_dtype, store
from vita_jax.plus.frontend import FEATURE_SIZE, SAMPLE_RATE, Frontend
from vita_jax.plus.sensevoice import NUM_QUERIES, SenseVoiceConfig
from vita_jax.plus.vita_audio_plus import VitaAudioPlus

CHECKPOINT_KIND = "vita_audio_plus"


class AudioPromptError(ValueError):
    """Placeholders and audios of a call disagree; the message gives the counts."""


def audio_count_bucket(count):
    """Padded number of audios of a call: the next power of two, so that a conversation growing by
    one audio per turn compiles its programs for 1, 2, 4, 8, ... audios only."""
    return 1 << max(int(count) - 1, 0).bit_length()


def feature_bucket(rows):
    """Padded LFR length for `rows`: a multiple of max(8, 2^(floor(log2 rows) - 3)), i.e. eight
    buckets per octave and less than max(8, rows / 8) padding, so new audio lengths rarely recompile."""
    step = max(8, 1 << max(int(rows).bit_length() - 4, 0))
    return -(-int(rows) // step) * step


def placeholder_runs(rows, context_id):
    """(row, start, length) of every run of `context_id` in `rows` (list of 1-D arrays), in order."""
    runs = []
    for r, row in enumerate(rows):
        is_context = np.concatenate([[False], np.asarray(row) == context_id, [False]])
        edges = np.flatnonzero(np.diff(is_context.astype(np.int8)))
        runs += [(r, int(start), int(end - start)) for start, end in zip(edges[::2], edges[1::2])]
    return runs


def check_placeholders(rows, context_id, audio_rows):
    """Raise AudioPromptError unless the k-th placeholder run has audio_rows[k] entries, for every k."""
    runs = placeholder_runs(rows, context_id)
    if len(runs) != len(audio_rows):
        raise AudioPromptError(f"input_ids hold {len(runs)} run(s) of <|context_of_audio|> placeholders but "
                               f"{len(audio_rows)} audio(s) were given")
    for k, ((row, start, length), want) in enumerate(zip(runs, audio_rows)):
        if length != want:
            raise AudioPromptError(f"placeholder run {k} (row {row}, positions {start}..{start + length - 1}) has "
                                   f"{length} tokens but audios[{k}] gives T + 4 = {want} rows")


def audio_list(audios):
    """`audios` as a list (None: no audio); a bare wave or path is an error."""
    if audios is None:
        return []
    if not isinstance(audios, (list, tuple)):
        raise AudioLoadError(f"audios must be a list of waves or file paths, one per placeholder run, "
                             f"got {type(audios).__name__}")
    return list(audios)


def expand_audio_tags(ids, audio_rows, tokens):
    """Replace the k-th `<|audio|>` of `ids` by <|begin_of_audio|>, audio_rows[k] placeholders, <|end_of_audio|>."""
    out, k = [], 0
    for token in ids:
        if int(token) != tokens.audio_tag:
            out.append(int(token))
            continue
        if k == len(audio_rows):
            raise AudioPromptError(f"the prompt has more <|audio|> tags than the {len(audio_rows)} audio(s) given")
        out += [tokens.begin_of_audio, *[tokens.context_of_audio] * audio_rows[k], tokens.end_of_audio]
        k += 1
    if k != len(audio_rows):
        raise AudioPromptError(f"the prompt has {k} <|audio|> tag(s) but {len(audio_rows)} audio(s) were given")
    return out


@functools.partial(jax.jit, static_argnames="module")
def _encode_audio(params, features, lengths, *, module):
    """Encoder + adapter rows, compiled once per (module definition, feature bucket)."""
    return module.apply({"params": params}, features, lengths, method="encode_audio")


@functools.partial(jax.jit, static_argnames=("module", "with_logits"))
def _plus_forward(params, input_ids, features, feature_lengths, segment_ids, positions, *, module, with_logits):
    """The cache-free forward with the audios spliced in, compiled once per (module definition, shapes)."""
    return module.apply({"params": params}, input_ids, features, feature_lengths, segment_ids, positions,
                        with_logits=with_logits)


class PlusModel(VitaAudioModel):
    """`config` (LLM), `audio_config` (SenseVoiceConfig), `params`, the front end and token ids.
    `unused` holds checkpoint tensors inference never reads (SenseVoice's CTC head), kept for export."""

    def __init__(self, config, params, audio_config, frontend, tokens, hf_config=None, side_files_dir=None,
                 unused=None, round_features=True):
        super().__init__(config, params, hf_config, side_files_dir)
        self.audio_config = audio_config
        self.frontend = frontend
        self.tokens = tokens
        self.unused = unused or {}
        self.module = VitaAudioPlus(config, audio_config=audio_config, context_token_id=tokens.context_of_audio,
                                    round_features=round_features)

    @classmethod
    def random(cls, config, audio_config, frontend, tokens, seed=0, round_features=True):
        """Randomly initialised parameters (tests, benchmarks)."""
        module = VitaAudioPlus(config, audio_config=audio_config, context_token_id=tokens.context_of_audio)
        variables = jax.jit(module.init)(jax.random.key(seed), jnp.zeros((1, 2), jnp.int32),
                                         jnp.zeros((1, 1, FEATURE_SIZE)), jnp.ones((1,), jnp.int32))
        return cls(config, nn.meta.unbox(variables["params"]), audio_config, frontend, tokens,
                   round_features=round_features)

    # ---- audio ----------------------------------------------------------------------------

    def features(self, audio, sample_rate=SAMPLE_RATE, seed=None, name=None):
        """LFR + CMVN features [T, 560] float32 of a wave or an audio file (dither: the frontend's,
        with a numpy Generator seeded by `seed`)."""
        rng = np.random.default_rng(seed) if self.frontend.dither else None
        return self.frontend(audio, sample_rate, rng=rng, name=name)

    def audio_batch(self, audios, sample_rate=SAMPLE_RATE, seed=None):
        """Features of `audios` zero-padded to a length bucket and to a count bucket (extra audios of
        length 0 last, which no placeholder reaches): (features [A_bucket, T_bucket, 560], lengths [A_bucket])."""
        audios = audio_list(audios)
        feats = [self.features(a, sample_rate, None if seed is None else seed + k, name=f"audios[{k}]")
                 for k, a in enumerate(audios)]
        lengths = np.zeros(audio_count_bucket(len(feats)), np.int32)
        lengths[:len(feats)] = [len(f) for f in feats]
        batch = np.zeros((len(lengths), feature_bucket(lengths.max()), FEATURE_SIZE), np.float32)
        for k, f in enumerate(feats):
            batch[k, :len(f)] = f
        return batch, lengths

    def encode_batch(self, audios, sample_rate=SAMPLE_RATE, seed=None):
        """Encoder + adapter rows of several audios as one padded batch: (rows [A, T_bucket + 4, H],
        valid rows per audio [A]), float32 numpy."""
        count = len(audio_list(audios))
        features, lengths = self.audio_batch(audios, sample_rate, seed)
        rows, row_lengths = _encode_audio(self.params, jnp.asarray(features), jnp.asarray(lengths), module=self.module)
        return np.asarray(rows)[:count], np.asarray(row_lengths)[:count]

    def encode(self, audio, sample_rate=SAMPLE_RATE, seed=None):
        """Encoder + adapter rows [T + 4, H] (float32 numpy) of one audio."""
        rows, lengths = self.encode_batch([audio], sample_rate, seed)
        return rows[0, :lengths[0]]

    def audio_prompt(self, input_ids, audios, sample_rate=SAMPLE_RATE):
        """ids (one prompt) with each `<|audio|>` expanded to the placeholders of the matching audio."""
        count = len(audio_list(audios))
        rows = [int(num_rows) + NUM_QUERIES for num_rows in self.audio_batch(audios, sample_rate)[1][:count]]
        return expand_audio_tags(input_ids, rows, self.tokens)

    def prompt_inputs(self, rows, audios, sample_rate=SAMPLE_RATE, seed=None):
        """The encoder inputs of a call (`prompt_inputs` of decoding; None without audio), the
        placeholder runs of `rows` (list of id rows) checked against the audios."""
        audios = audio_list(audios)
        if not audios:
            check_placeholders(rows, self.tokens.context_of_audio, [])
            return None
        features, lengths = self.audio_batch(audios, sample_rate, seed)
        check_placeholders(rows, self.tokens.context_of_audio, list(lengths[:len(audios)] + NUM_QUERIES))
        return {"features": jnp.asarray(features), "feature_lengths": jnp.asarray(lengths)}

    # ---- LLM ------------------------------------------------------------------------------

    def forward(self, input_ids, audios=None, sample_rate=SAMPLE_RATE, segment_ids=None, positions=None,
                with_logits=True, seed=None):
        """Cache-free forward [B, S] with the audios spliced in; outputs as VitaAudioModel.forward."""
        input_ids = checked_input_ids(self.config, input_ids, segment_ids, positions)
        inputs = self.prompt_inputs(list(np.asarray(input_ids)), audios, sample_rate, seed) or {}
        return _plus_forward(self.params, input_ids, inputs.get("features"), inputs.get("feature_lengths"),
                             segment_ids, positions, module=self.module, with_logits=with_logits)

    def decode(self, input_ids, audios=None, sample_rate=SAMPLE_RATE, seed=None, **options):
        """`vita_jax.decode.decode` with the audios encoded at prefill: a DecodeResult."""
        inputs = self.prompt_inputs(prompt_rows(input_ids), audios, sample_rate, seed)
        options.setdefault("eos_token_ids", self.tokens.eos_ids)
        return decode(self, input_ids, prompt_inputs=inputs, **options)

    def generate(self, input_ids, audios=None, mode="turbo", max_new_tokens=128, **options):
        """Generated ids [B, N] (padded after a row stops); options as `vita_jax.decode.decoder.prepare`."""
        return self.decode(input_ids, audios, mode=mode, max_new_tokens=max_new_tokens, **options).sequences

    def stream(self, input_ids, audios=None, mode="turbo", max_new_tokens=128, sample_rate=SAMPLE_RATE,
               seed=None, **options):
        """Iterator of TextEvent / AudioChunkEvent / EndEvent (audio ids read from the tokenizer files)."""
        inputs = self.prompt_inputs(prompt_rows(input_ids), audios, sample_rate, seed)
        options.setdefault("eos_token_ids", self.tokens.eos_ids)
        return stream(self, input_ids, mode=mode, max_new_tokens=max_new_tokens, prompt_inputs=inputs,
                      end_of_audio_id=self.tokens.end_of_audio, audio_offset=self.tokens.audio_0,
                      num_audio_codes=self.tokens.num_audio_codes, **options)

    # ---- saving ---------------------------------------------------------------------------

    def save_pretrained(self, out_dir, dtype="bfloat16", max_shard_bytes=5 * 2**30):
        """Write the Plus Hugging Face layout (config.json, safetensors, tokenizer files, am.mvn)."""
        export_plus_hf({**self.params, "unused": self.unused}, self.config, self.audio_config, out_dir, dtype=dtype,
                       hf_config=self.hf_config, max_shard_bytes=max_shard_bytes,
                       copy_side_files_from=self.side_files_dir)

    def save(self, out_dir):
        """This project's checkpoint: orbax params (+ carried tensors), metadata, side files incl. am.mvn."""
        audio = dataclasses.asdict(self.audio_config)
        metadata = {"model_config": self.config.to_dict(), "audio_config": audio, "hf_config": self.hf_config,
                    "param_layout": "scanned" if self.config.scan_layers else "unrolled"}
        tree = {**self.params, **({"unused": self.unused} if self.unused else {})}
        side = self.side_files_dir

        def add_side_files(tmp):
            if side:
                copy_plus_side_files(side, os.path.join(tmp, SIDE_FILES_DIR))

        param_checkpoint.save_params(out_dir, tree, CHECKPOINT_KIND, metadata, before_commit=add_side_files)


def is_plus_checkpoint(path):
    """True for a Plus Hugging Face folder or a Plus checkpoint of this project."""
    if param_checkpoint.is_param_checkpoint(path):
        return param_checkpoint.read_metadata(path).get("kind") == CHECKPOINT_KIND
    if not os.path.isfile(os.path.join(path, "config.json")):
        return False
    return read_hf_config(path).get("model_type") == PLUS_MODEL_TYPE


def load_plus(path, param_dtype=None, dtype="float32", audio_dtype="float32", scan_layers=False, remat_policy="none",
              round_features=True, dither=0.0, progress=True):
    """Load a Plus Hugging Face folder (model_type qwen2_mtp_sensevoice) or this project's Plus checkpoint.

    param_dtype: storage, a param_storage.PARAM_DTYPES name (default: as stored); dtype /
    audio_dtype: compute dtype of the LLM / of the encoder and adapter; round_features: bfloat16
    rounding of the features before the encoder (the original's behaviour); dither: front-end
    dither std in int16 units (0: deterministic).
    """
    if not os.path.isdir(path):
        raise FileNotFoundError(f"checkpoint directory not found: {path}")
    storage, param_dtype = param_dtype, read_dtype(param_dtype)
    if param_checkpoint.is_param_checkpoint(path):
        config, params, meta = read_model_checkpoint(path, CHECKPOINT_KIND, scan_layers, param_dtype)
        audio_config = SenseVoiceConfig(**meta["audio_config"])
        unused = params.pop("unused", {})
        hf_config, side = meta.get("hf_config"), os.path.join(path, SIDE_FILES_DIR)
    else:
        config, audio_config, params, hf_config = import_plus_hf(path, param_dtype, scan_layers, progress=progress)
        unused, side = params.pop("unused", {}), path
    frontend = Frontend.from_file(os.path.join(side, CMVN_FILE), dither=dither)
    tokens = read_plus_tokens(side)
    for name, token in dataclasses.asdict(tokens).items():
        if name not in ("eos_ids", "num_audio_codes") and not 0 <= token < config.vocab_size:
            raise ValueError(f"{side}: token id {token} of {name} is outside the vocabulary of {config.vocab_size}")
    config = config.replace(dtype=dtype, remat_policy=remat_policy)
    audio_config = dataclasses.replace(audio_config, dtype=audio_dtype, param_dtype=config.param_dtype)
    return PlusModel(config, store(params, storage), audio_config, frontend, tokens, hf_config, side, unused,
                     round_features)
