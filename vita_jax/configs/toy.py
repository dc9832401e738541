"""The `:toy` variant of the four stage configs: the whole curriculum on this CPU in minutes
(docs/toy-mctp.md). `make toy` writes the corpus to runs/toy/data and runs the stages in order,
each starting from the previous stage's export (runs/toy/{stage}/final).
"""

from vita_jax.configs import STAGES
from vita_jax.configs.model import get_config as model_config

TOY_ROOT = "runs/toy"
TOY_DATA = f"{TOY_ROOT}/data"
TOY_AUDIO_CODES = 64  # 16 phoneme units x 4 coarticulation variants; the tiny speech tokenizer's codebook
# stage: (steps, {group: peak lr}); the modules learn at the backbone's rate or faster (spec section 6)
TOY_SCHEDULE = {
    "stage1_alignment": (600, {"backbone": 3e-3}),
    "stage2_single_mctp": (200, {"mctp": 3e-3}),
    "stage3_multi_mctp": (300, {"mctp": 3e-3}),
    "stage4_sft": (200, {"backbone": 3e-4, "mctp": 1e-3}),
}


def toy_variant(cfg):
    """The same stage on the toy geometry and the toy corpus, from the previous stage's export."""
    stage = cfg.stage
    cfg.model = model_config("toy").replace(num_mctp_modules=cfg.model.num_mctp_modules).to_dict()
    index = STAGES.index(stage)
    cfg.init.checkpoint = f"{TOY_ROOT}/{STAGES[index - 1]}/final" if index else ""
    cfg.data.update(files=f"{TOY_DATA}/train.jsonl", tokenizer=f"{TOY_DATA}/tokenizer",
                    num_audio_codes=TOY_AUDIO_CODES, seq_len=256, worker_count=0)
    steps, lr = TOY_SCHEDULE[stage]
    cfg.optim.update(lr=lr, weight_decay=0.0)
    cfg.train.update(steps=steps, global_batch_size=16, log_every=50, workdir=f"{TOY_ROOT}/{stage}", loss_chunk=256)
    cfg.checkpoint.update(every=steps, keep=1, use_async=False)
    cfg.mesh.update(fsdp=1, data=-1, devices=1)
    return cfg
