"""The run config shared by the four stage configs (configs/stage*.py), and its tiny variant.

Sections: stage, compile_only, topology, model (configs/model.py geometry + num_mctp_modules, scan_layers, dtypes),
init (checkpoint to start from: Hugging Face or vita_jax directory; "" = random), data, optim,
train, mesh, checkpoint, export, distributed. Every field can be overridden on the command line:
`python train.py --config configs/stage4_sft.py --config.optim.lr.mctp=1e-4`.
"""

import os

import ml_collections

from vita_jax.configs.model import get_config as model_config

RELEASE_OPTIM = dict(b1=0.9, b2=0.95, eps=1e-8, grad_clip=1.0, warmup_ratio=0.03)
TINY_DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "sample.jsonl")  # ships in the package


def base_config(stage, num_mctp_modules, trainable, lr, weight_decay, steps, seq_len):
    cfg = ml_collections.ConfigDict()
    cfg.stage = stage
    cfg.model = model_config("vita-audio-7b").replace(
        num_mctp_modules=num_mctp_modules, scan_layers=True, remat_policy="full", dtype="bfloat16",
        param_dtype="float32").to_dict()  # a plain section: overridable as --config.model.FIELD
    cfg.init = dict(checkpoint="", seed=0)
    cfg.data = dict(
        files="", tokenizer="", num_audio_codes=16384, ratios="boost", seq_len=seq_len,
        num_shards=0,  # 0: one per process; set it to keep the data order when the process count changes
        seed=0, worker_count=4, read_threads=0, on_bad_sample="skip", code_cache="", speech_tokenizer_dir="",
        data_root="",
    )
    cfg.optim = dict(trainable=trainable, lr=lr, weight_decay=weight_decay, **RELEASE_OPTIM)
    cfg.train = dict(steps=steps, global_batch_size=16, microbatches=1, mtp_loss_weight=1.0, log_every=10,
                     workdir=f"runs/{stage}", peak_flops_per_device=0.0,
                     loss_chunk=512,  # token chunk of the fused loss: divides data.seq_len (0 = whole length)
                     loss_vocab_block=8192)  # vocabulary rows per block of the fused loss
    # compile_only: compile one training step for `topology` (e.g. "v5e:4x4", needs libtpu) or this
    # run's devices, print its per-device memory and whether it fits, and exit (1 when it does not)
    cfg.compile_only = False
    cfg.topology = ""
    cfg.mesh = dict(data=1, fsdp=-1, tensor=1, devices=0)  # devices: use the first N (0 = all)
    cfg.checkpoint = dict(every=500, keep=3, use_async=True)
    cfg.export = dict(enabled=True, hf_dir="", dtype="bfloat16")
    cfg.distributed = dict(enabled=False, coordinator_address="", num_processes=0, process_id=-1,
                           cpu_collectives="")
    return cfg


def tiny_variant(cfg):
    """The same stage on the tiny model, the bundled sample data and a BPE trained on it (demo, tests)."""
    k = cfg.model.num_mctp_modules
    cfg.model = model_config("tiny").replace(
        num_mctp_modules=k, vocab_size=16704).to_dict()  # 300 BPE + 20 specials + 16384 audio tokens
    cfg.data.update(files=TINY_DATA, tokenizer="tiny", seq_len=192, worker_count=0)
    # workdir "": one per distinct config under the temp directory (vita_jax/train/run_identity.py);
    # loss_chunk divides the tiny seq_len 192 and the tests' 160
    cfg.train.update(steps=20, global_batch_size=4, log_every=5, workdir="", loss_chunk=32)
    cfg.checkpoint.update(every=10)
    cfg.mesh.update(fsdp=1, data=-1)
    return cfg


def plus_variant(cfg, tiny=False):
    """The stage for VITA-Audio-Plus (user speech through the SenseVoice encoder + adapter; jsonl
    `audios` of user turns are wav files, see vita_jax/data/plus_samples.py). The adapter trains
    with its own learning rate; the encoder only with plus.train_encoder=True (optim.lr.encoder).
    Real geometry: init.checkpoint is a Plus checkpoint. Tiny: random weights, set plus.cmvn_file
    (an am.mvn) and data.files."""
    cfg.plus = dict(enabled=True, train_encoder=False, cmvn_file="", max_audios_per_row=4, max_audio_frames=512,
                    audio=dict(output_size=512, attention_heads=4, linear_units=2048, num_blocks=50, tp_blocks=20))
    cfg.optim.trainable = (*cfg.optim.trainable, "adapter")
    cfg.optim.lr.adapter, cfg.optim.lr.encoder = 2e-5 if not tiny else 3e-3, 2e-6 if not tiny else 3e-4
    if tiny:
        cfg = tiny_variant(cfg)
        cfg.model.vocab_size = 16712  # 300 BPE + 20 specials + 16384 audio tokens + <|context_of_audio|>
        cfg.data.files = ""
        cfg.plus.update(max_audios_per_row=2, max_audio_frames=64,
                        audio=dict(output_size=32, attention_heads=4, linear_units=48, num_blocks=3, tp_blocks=2))
    return cfg


def _toy_variant(cfg):
    from vita_jax.configs.toy import toy_variant  # toy.py builds on this module

    return toy_variant(cfg)


def finish(cfg, arg):
    """Apply a variant when asked (`--config configs/stage1_alignment.py:tiny`): tiny, toy (the
    trained toy of vita_jax/configs/toy.py), plus (VITA-Audio-Plus), tiny_plus."""
    variants = {"tiny": tiny_variant, "toy": _toy_variant, "plus": plus_variant,
                "tiny_plus": lambda c: plus_variant(c, tiny=True)}
    if arg in variants:
        return variants[arg](cfg)
    if arg:
        raise ValueError(f"unknown config variant {arg!r}; use one of {', '.join(':' + v for v in variants)} or "
                         f"nothing")
    return cfg
