"""Hyper-parameters of the GLM-4-Voice decoder, read from its `config.yaml`.

The original file is a HyperPyYAML document whose tags (`!new:flow.flow.MaskedDiffWithXvec`,
`!ref <sample_rate>`, ...) construct Python objects. Here every tag is ignored and its node
read as plain data; `!ref <name>` is resolved against the top-level keys. Only the `flow`
and `hift` sections are used, and each field is validated with an error naming the file
and the field.
"""

import dataclasses
import os

import yaml


class DecoderConfigError(ValueError):
    """`config.yaml` does not describe the GLM-4-Voice flow + HiFT structure."""


class _Ref(str):
    """The text of a `!ref <name>` node, resolved after loading."""


class _TagIgnoringLoader(yaml.SafeLoader):
    """SafeLoader that reads any `!tag` node as the plain mapping/sequence/scalar it holds."""


def _construct_tagged(loader, tag_suffix, node):
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    value = loader.construct_scalar(node)
    return _Ref(value) if tag_suffix == "ref" else value


_TagIgnoringLoader.add_multi_constructor("!", _construct_tagged)


def _resolve_refs(node, top):
    if isinstance(node, _Ref):
        name = node.strip().strip("<>")
        if name not in top:
            raise KeyError(name)
        return _resolve_refs(top[name], top)
    if isinstance(node, dict):
        return {k: _resolve_refs(v, top) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve_refs(v, top) for v in node]
    return node


@dataclasses.dataclass(frozen=True)
class FlowConfig:
    """`flow` section: token embedding, conformer encoder, length regulator, CFM U-Net."""

    vocab_size: int = 16384
    input_size: int = 512
    output_size: int = 80  # mel bins
    spk_embed_dim: int = 192
    input_frame_rate: float = 12.5
    # encoder (BlockConformerEncoder)
    encoder_size: int = 512
    encoder_heads: int = 8
    encoder_ffn: int = 2048
    encoder_layers: int = 6
    encoder_block_size: int = 10
    # length regulator (InterpolateRegulator)
    regulator_channels: int = 80
    regulator_blocks: int = 4
    # CFM
    inference_cfg_rate: float = 0.7
    n_timesteps: int = 10
    # estimator (ConditionalDecoder)
    estimator_in_channels: int = 320
    estimator_channels: tuple = (256, 256)
    estimator_head_dim: int = 64
    estimator_heads: int = 8
    estimator_transformer_blocks: int = 4
    estimator_mid_blocks: int = 12


@dataclasses.dataclass(frozen=True)
class HiftConfig:
    """`hift` section: F0 predictor, NSF source, upsampling generator, iSTFT head."""

    in_channels: int = 80
    base_channels: int = 512
    nb_harmonics: int = 8
    sampling_rate: int = 22050
    nsf_alpha: float = 0.1
    nsf_sigma: float = 0.003
    nsf_voiced_threshold: float = 10.0
    upsample_rates: tuple = (8, 8)
    upsample_kernel_sizes: tuple = (16, 16)
    n_fft: int = 16
    hop_len: int = 4
    resblock_kernel_sizes: tuple = (3, 7, 11)
    resblock_dilation_sizes: tuple = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    source_resblock_kernel_sizes: tuple = (7, 11)
    source_resblock_dilation_sizes: tuple = ((1, 3, 5), (1, 3, 5))
    lrelu_slope: float = 0.1
    audio_limit: float = 0.99
    f0_cond_channels: int = 512
    f0_num_class: int = 1

    @property
    def hop_samples(self):
        """Waveform samples per mel frame (256 for the real model)."""
        prod = 1
        for r in self.upsample_rates:
            prod *= r
        return prod * self.hop_len


@dataclasses.dataclass(frozen=True)
class DecoderConfig:
    flow: FlowConfig
    hift: HiftConfig

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d):
        def tuples(v):
            return tuple(tuples(x) for x in v) if isinstance(v, list) else v

        return cls(
            FlowConfig(**{k: tuples(v) for k, v in d["flow"].items()}),
            HiftConfig(**{k: tuples(v) for k, v in d["hift"].items()}),
        )


class _Section:
    """Typed access to a nested mapping with errors naming file and dotted field."""

    def __init__(self, data, where, path):
        if not isinstance(data, dict):
            raise DecoderConfigError(f"{where}: field '{path}' must be a mapping, got {type(data).__name__}")
        self.data, self.where, self.path = data, where, path

    def field(self, name):
        return f"{self.path}.{name}" if self.path else name

    def sub(self, name):
        return _Section(self._raw(name), self.where, self.field(name))

    def _raw(self, name, default=None, required=True):
        if name not in self.data:
            if required:
                raise DecoderConfigError(f"{self.where}: missing field '{self.field(name)}'")
            return default
        return self.data[name]

    def int(self, name, default=None):
        v = self._raw(name, default, required=default is None)
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise DecoderConfigError(f"{self.where}: field '{self.field(name)}' must be a positive integer, got {v!r}")
        return v

    def float(self, name, default=None):
        v = self._raw(name, default, required=default is None)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise DecoderConfigError(f"{self.where}: field '{self.field(name)}' must be a number, got {v!r}")
        return float(v)

    def ints(self, name, nested=False):
        v = self._raw(name)
        ok = isinstance(v, list) and len(v) > 0
        if ok:
            items = v if not nested else [x for row in v if isinstance(row, list) for x in row]
            ok = all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in items)
            ok = ok and (not nested or all(isinstance(row, list) and row for row in v))
        if not ok:
            kind = "list of lists of positive integers" if nested else "list of positive integers"
            raise DecoderConfigError(f"{self.where}: field '{self.field(name)}' must be a non-empty {kind}, got {v!r}")
        return tuple(tuple(row) for row in v) if nested else tuple(v)


def _parse_flow(s):
    enc, reg, cfm = s.sub("encoder"), s.sub("length_regulator"), s.sub("decoder")
    est = cfm.sub("estimator")
    cfm_params = cfm.sub("cfm_params")
    if "content" in cfm_params.data:  # `!new:omegaconf.DictConfig {content: {...}}`
        cfm_params = cfm_params.sub("content")
    channels = est.ints("channels")
    cfg = FlowConfig(
        vocab_size=s.int("vocab_size"),
        input_size=s.int("input_size"),
        output_size=s.int("output_size"),
        spk_embed_dim=s.int("spk_embed_dim"),
        input_frame_rate=s.float("input_frame_rate"),
        encoder_size=enc.int("output_size"),
        encoder_heads=enc.int("attention_heads"),
        encoder_ffn=enc.int("linear_units"),
        encoder_layers=enc.int("num_blocks"),
        encoder_block_size=enc.int("block_size", 10),
        regulator_channels=reg.int("channels"),
        regulator_blocks=len(reg.ints("sampling_ratios")),
        inference_cfg_rate=cfm_params.float("inference_cfg_rate"),
        estimator_in_channels=est.int("in_channels"),
        estimator_channels=channels,
        estimator_head_dim=est.int("attention_head_dim"),
        estimator_heads=est.int("num_heads"),
        estimator_transformer_blocks=est.int("n_blocks"),
        estimator_mid_blocks=est.int("num_mid_blocks"),
    )
    where = s.where
    if enc.int("input_size", cfg.input_size) != cfg.input_size:
        raise DecoderConfigError(f"{where}: 'flow.encoder.input_size' must equal 'flow.input_size' ({cfg.input_size})")
    if cfg.encoder_size % cfg.encoder_heads:
        raise DecoderConfigError(f"{where}: 'flow.encoder.output_size' {cfg.encoder_size} is not divisible by "
                                 f"attention_heads {cfg.encoder_heads}")
    if cfg.regulator_channels != cfg.output_size:
        raise DecoderConfigError(
            f"{where}: 'flow.length_regulator.channels' must equal 'flow.output_size' ({cfg.output_size})")
    if est.int("out_channels") != cfg.output_size:
        raise DecoderConfigError(
            f"{where}: 'flow.decoder.estimator.out_channels' must equal 'flow.output_size' ({cfg.output_size})")
    if cfg.estimator_in_channels != 4 * cfg.output_size:
        raise DecoderConfigError(
            f"{where}: 'flow.decoder.estimator.in_channels' must be 4 x output_size = {4 * cfg.output_size} "
            f"(x, mu, speaker, cond), got {cfg.estimator_in_channels}"
        )
    if len(set(channels)) != 1 or len(channels) != 2:
        raise DecoderConfigError(
            f"{where}: 'flow.decoder.estimator.channels' must be two equal sizes like [256, 256], got {list(channels)}")
    if est._raw("act_fn", "gelu", required=False) != "gelu":
        raise DecoderConfigError(f"{where}: 'flow.decoder.estimator.act_fn' must be 'gelu'")
    return cfg


def _parse_hift(s):
    istft, f0 = s.sub("istft_params"), s.sub("f0_predictor")
    cfg = HiftConfig(
        in_channels=s.int("in_channels"),
        base_channels=s.int("base_channels"),
        nb_harmonics=s.int("nb_harmonics"),
        sampling_rate=s.int("sampling_rate"),
        nsf_alpha=s.float("nsf_alpha"),
        nsf_sigma=s.float("nsf_sigma"),
        nsf_voiced_threshold=s.float("nsf_voiced_threshold"),
        upsample_rates=s.ints("upsample_rates"),
        upsample_kernel_sizes=s.ints("upsample_kernel_sizes"),
        n_fft=istft.int("n_fft"),
        hop_len=istft.int("hop_len"),
        resblock_kernel_sizes=s.ints("resblock_kernel_sizes"),
        resblock_dilation_sizes=s.ints("resblock_dilation_sizes", nested=True),
        source_resblock_kernel_sizes=s.ints("source_resblock_kernel_sizes"),
        source_resblock_dilation_sizes=s.ints("source_resblock_dilation_sizes", nested=True),
        lrelu_slope=s.float("lrelu_slope"),
        audio_limit=s.float("audio_limit"),
        f0_cond_channels=f0.int("cond_channels"),
        f0_num_class=f0.int("num_class"),
    )
    where = s.where
    n_up = len(cfg.upsample_rates)
    for name in ("upsample_kernel_sizes", "source_resblock_kernel_sizes", "source_resblock_dilation_sizes"):
        if len(getattr(cfg, name)) != n_up:
            raise DecoderConfigError(f"{where}: 'hift.{name}' must have {n_up} entries (one per upsample rate)")
    if len(cfg.resblock_dilation_sizes) != len(cfg.resblock_kernel_sizes):
        raise DecoderConfigError(
            f"{where}: 'hift.resblock_dilation_sizes' must have one entry per resblock kernel size")
    if f0.int("in_channels") != cfg.in_channels:
        raise DecoderConfigError(
            f"{where}: 'hift.f0_predictor.in_channels' must equal 'hift.in_channels' ({cfg.in_channels})")
    if cfg.f0_num_class != 1:
        raise DecoderConfigError(f"{where}: 'hift.f0_predictor.num_class' must be 1")
    if cfg.base_channels % (2**n_up):
        raise DecoderConfigError(f"{where}: 'hift.base_channels' must be divisible by 2^{n_up}")
    if cfg.n_fft % 2 or cfg.n_fft % cfg.hop_len:
        raise DecoderConfigError(f"{where}: 'hift.istft_params' needs an even n_fft that is a multiple of hop_len")
    return cfg


def load_decoder_config(path):
    """Parse `path` (a decoder `config.yaml`) into a DecoderConfig, validating every field used."""
    if not os.path.isfile(path):
        raise DecoderConfigError(f"decoder config not found: {path}")
    try:
        with open(path) as f:
            doc = yaml.load(f, Loader=_TagIgnoringLoader)  # noqa: S506 - tags are read as plain data
    except yaml.YAMLError as err:
        raise DecoderConfigError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(doc, dict):
        raise DecoderConfigError(
            f"{path}: expected a mapping with 'flow' and 'hift' sections, got {type(doc).__name__}")
    try:
        doc = _resolve_refs(doc, doc)
    except KeyError as err:
        raise DecoderConfigError(f"{path}: '!ref <{err.args[0]}>' names no top-level field") from err
    top = _Section(doc, path, "")
    return DecoderConfig(flow=_parse_flow(top.sub("flow")), hift=_parse_hift(top.sub("hift")))


def config_yaml_text(cfg):
    """A `config.yaml` in the original layout (with its object-constructing tags) for `cfg`."""
    f, h = cfg.flow, cfg.hift

    def seq(v):
        return "[" + ", ".join(seq(x) if isinstance(x, tuple) else str(x) for x in v) + "]"

    return f"""# GLM-4-Voice decoder configuration (HyperPyYAML; tags construct the PyTorch modules).
sample_rate: {h.sampling_rate}
spk_embed_dim: {f.spk_embed_dim}

flow: !new:flow.flow.MaskedDiffWithXvec
    input_size: {f.input_size}
    output_size: {f.output_size}
    spk_embed_dim: !ref <spk_embed_dim>
    output_type: 'mel'
    vocab_size: {f.vocab_size}
    input_frame_rate: {f.input_frame_rate}
    only_mask_loss: True
    encoder: !new:flow.encoder.BlockConformerEncoder
        output_size: {f.encoder_size}
        attention_heads: {f.encoder_heads}
        linear_units: {f.encoder_ffn}
        num_blocks: {f.encoder_layers}
        dropout_rate: 0.1
        positional_dropout_rate: 0.1
        attention_dropout_rate: 0.1
        normalize_before: True
        input_layer: 'linear'
        pos_enc_layer_type: 'rel_pos_espnet'
        selfattention_layer_type: 'block_rel_selfattn'
        input_size: {f.input_size}
        use_cnn_module: False
        macaron_style: False
        block_size: {f.encoder_block_size}
    length_regulator: !new:flow.length_regulator.InterpolateRegulator
        channels: {f.regulator_channels}
        sampling_ratios: {seq((1,) * f.regulator_blocks)}
    decoder: !new:flow.flow_matching.ConditionalCFM
        in_channels: 240
        n_spks: 1
        spk_emb_dim: {f.output_size}
        cfm_params: !new:omegaconf.DictConfig
            content:
                sigma_min: 1e-06
                solver: 'euler'
                t_scheduler: 'cosine'
                training_cfg_rate: 0.2
                inference_cfg_rate: {f.inference_cfg_rate}
                reg_loss_type: 'l1'
        estimator: !new:flow.decoder.ConditionalDecoder
            in_channels: {f.estimator_in_channels}
            out_channels: {f.output_size}
            channels: {seq(f.estimator_channels)}
            dropout: 0.0
            attention_head_dim: {f.estimator_head_dim}
            n_blocks: {f.estimator_transformer_blocks}
            num_mid_blocks: {f.estimator_mid_blocks}
            num_heads: {f.estimator_heads}
            act_fn: 'gelu'

hift: !new:hifigan.generator.HiFTGenerator
    in_channels: {h.in_channels}
    base_channels: {h.base_channels}
    nb_harmonics: {h.nb_harmonics}
    sampling_rate: !ref <sample_rate>
    nsf_alpha: {h.nsf_alpha}
    nsf_sigma: {h.nsf_sigma}
    nsf_voiced_threshold: {h.nsf_voiced_threshold}
    upsample_rates: {seq(h.upsample_rates)}
    upsample_kernel_sizes: {seq(h.upsample_kernel_sizes)}
    istft_params:
        n_fft: {h.n_fft}
        hop_len: {h.hop_len}
    resblock_kernel_sizes: {seq(h.resblock_kernel_sizes)}
    resblock_dilation_sizes: {seq(h.resblock_dilation_sizes)}
    source_resblock_kernel_sizes: {seq(h.source_resblock_kernel_sizes)}
    source_resblock_dilation_sizes: {seq(h.source_resblock_dilation_sizes)}
    lrelu_slope: {h.lrelu_slope}
    audio_limit: {h.audio_limit}
    f0_predictor: !new:hifigan.f0_predictor.ConvRNNF0Predictor
        num_class: {h.f0_num_class}
        in_channels: {h.in_channels}
        cond_channels: {h.f0_cond_channels}
"""
