"""The model configuration (a frozen, hashable dataclass: a static argument of every compiled
program, so no program can see a config change) and its mapping to Hugging Face config.json.

Fields
  vocab_size, hidden_size, intermediate_size, num_layers (backbone layers L),
  num_heads, num_kv_heads, head_dim, rope_theta, rms_norm_eps, max_position_embeddings,
  num_mctp_modules (K; 0 for a plain Qwen2 model),
  scan_layers (parameters of the backbone layers stacked on a leading `layers` axis and
  run with nn.scan; False keeps one parameter subtree per layer, faster to decode),
  remat_policy (which activations of each decoder layer are recomputed in the backward pass
  instead of kept: none / full / minimal / save_dot_except_mlp / offload_dot_except_mlp, see
  nn/remat.py; the legacy boolean `remat` of older checkpoints means full / none),
  attention (auto / xla / chunked / cudnn / splash, see nn/attention.py),
  dtype (compute dtype of matmuls), param_dtype (dtype parameters are created in).

Changing a field builds a new config: `cfg.replace(num_mctp_modules=3)`. Run configs
(ml_collections, overridable on the command line) hold the same fields as a plain dict section;
`ModelConfig.from_dict` is the one conversion between them.
"""

import dataclasses

from vita_jax.nn.attention import resolve_attention
from vita_jax.nn.remat import check_remat_policy

HF_MODEL_TYPES = ("qwen2", "qwen2_mtp")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    vocab_size: int = 168072
    hidden_size: int = 896
    intermediate_size: int = 4864
    num_layers: int = 24
    num_heads: int = 14
    num_kv_heads: int = 2
    head_dim: int = 0  # 0: hidden_size // num_heads
    rope_theta: float = 1e6
    rms_norm_eps: float = 1e-6
    max_position_embeddings: int = 32768
    num_mctp_modules: int = 10
    scan_layers: bool = False
    remat_policy: str = "none"
    attention: str = "auto"
    dtype: str = "float32"
    param_dtype: str = "float32"

    def __post_init__(self):
        if not self.head_dim and self.num_heads > 0:
            object.__setattr__(self, "head_dim", self.hidden_size // self.num_heads)
        validate(self)

    @classmethod
    def from_dict(cls, fields, source="model config"):
        """From a dict (checkpoint metadata, a run config's `model` section); unknown keys are refused.
        The legacy boolean `remat` of older checkpoints stands for remat_policy full / none."""
        fields = dict(fields)
        if "remat" in fields:
            legacy = fields.pop("remat")
            fields.setdefault("remat_policy", "full" if legacy else "none")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(fields) - known
        if unknown:
            raise KeyError(f"{source}: unknown model config fields {sorted(unknown)}; known: {sorted(known)}")
        return cls(**dict(fields))

    def replace(self, **fields):
        return dataclasses.replace(self, **fields)

    def to_dict(self):
        return dataclasses.asdict(self)


def validate(cfg):
    """Raise ValueError naming the field when the geometry is inconsistent."""
    for name in ("vocab_size", "hidden_size", "intermediate_size", "num_layers", "num_heads", "num_kv_heads", "head_dim"):
        if int(getattr(cfg, name)) <= 0:
            raise ValueError(f"model config: {name} must be positive, got {getattr(cfg, name)}")
    if cfg.num_heads % cfg.num_kv_heads:
        raise ValueError(f"model config: num_heads {cfg.num_heads} is not a multiple of num_kv_heads {cfg.num_kv_heads}")
    if cfg.head_dim % 2:
        raise ValueError(f"model config: head_dim must be even for rotary embedding, got {cfg.head_dim}")
    check_remat_policy(cfg.remat_policy)
    resolve_attention(cfg.attention)
    if cfg.num_mctp_modules < 0:
        raise ValueError(f"model config: num_mctp_modules must be >= 0, got {cfg.num_mctp_modules}")


def from_hf_config(hf, source="config.json"):
    """Build a ModelConfig from a Hugging Face config dict of model_type qwen2 / qwen2_mtp."""
    model_type = hf.get("model_type")
    if model_type not in HF_MODEL_TYPES:
        raise ValueError(f"{source}: unknown model_type {model_type!r}; supported: {', '.join(HF_MODEL_TYPES)}")
    if hf.get("tie_word_embeddings", False):
        raise ValueError(f"{source}: tie_word_embeddings=true is not supported (VITA-Audio unties lm_head)")
    act = hf.get("hidden_act", "silu")
    if act != "silu":
        raise ValueError(f"{source}: hidden_act {act!r} is not supported (expected 'silu')")
    rope = hf.get("rope_parameters") or {}
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if hf.get("rope_scaling") or rope_type != "default":
        raise ValueError(f"{source}: rope scaling {hf.get('rope_scaling') or rope} is not supported")
    theta = rope.get("rope_theta", hf.get("rope_theta", 10000.0))
    num_mctp = int(hf.get("num_nextn_predict_layers", 0) or 0) if model_type == "qwen2_mtp" else 0
    total_layers = int(_required(hf, "num_hidden_layers", source))
    if total_layers <= num_mctp:
        raise ValueError(f"{source}: num_hidden_layers {total_layers} must exceed num_nextn_predict_layers {num_mctp}")
    num_heads = int(_required(hf, "num_attention_heads", source))
    hidden = int(_required(hf, "hidden_size", source))
    return ModelConfig(
        vocab_size=int(_required(hf, "vocab_size", source)),
        hidden_size=hidden,
        intermediate_size=int(_required(hf, "intermediate_size", source)),
        num_layers=total_layers - num_mctp,
        num_heads=num_heads,
        num_kv_heads=int(hf.get("num_key_value_heads") or num_heads),
        head_dim=int(hf.get("head_dim") or hidden // num_heads),
        rope_theta=float(theta),
        rms_norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
        max_position_embeddings=int(hf.get("max_position_embeddings", 32768)),
        num_mctp_modules=num_mctp,
    )


def to_hf_config(cfg, torch_dtype, base=None):
    """The config.json dict for `cfg`; fields of `base` (an imported config.json) are kept."""
    hf = dict(base or {})
    mtp = cfg.num_mctp_modules > 0
    hf.update(
        model_type="qwen2_mtp" if mtp else "qwen2",
        architectures=["Qwen2MTPForCausalLM" if mtp else "Qwen2ForCausalLM"],
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers + cfg.num_mctp_modules,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        head_dim=cfg.head_dim,
        hidden_act="silu",
        rms_norm_eps=cfg.rms_norm_eps,
        max_position_embeddings=cfg.max_position_embeddings,
        tie_word_embeddings=False,
        torch_dtype=torch_dtype,
    )
    if "rope_parameters" in hf:
        hf["rope_parameters"] = {**hf["rope_parameters"], "rope_theta": cfg.rope_theta}
    else:
        hf["rope_theta"] = cfg.rope_theta
    if mtp:
        hf["num_nextn_predict_layers"] = cfg.num_mctp_modules
    else:
        hf.pop("num_nextn_predict_layers", None)
    return hf


def _required(hf, key, source):
    if key not in hf:
        raise KeyError(f"{source}: missing required field {key!r}")
    return hf[key]
