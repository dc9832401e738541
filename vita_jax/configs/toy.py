"""The `:toy` variant of the four stage configs: the whole curriculum on this CPU in minutes
(docs/toy-mctp.md). `make toy` writes the corpus to runs/toy/data and runs the stages in order,
each starting from the previous stage's export (runs/toy/{stage}/final).
"""

from vita_jax.configs import STAGES
from vita_jax.configs.model import get_config as model_config

TOY_ROOT = "runs/toy"
TOY_DATA = f"{TOY_ROOT}/data"
TOY_AUDIO_CODES = 64  # 16 phoneme units x 4 coarticulation variants; the tiny speech tokenizer's codebook
# stage: (steps, global batch, {group: peak lr}); the modules learn at the backbone's rate or faster
# (spec section 6); stages 3 and 4 run all 10 modules, so a smaller batch keeps them within minutes.
# Module 0 gets the longest stage (it is cheap on the frozen backbone and stage 3 copies it into
# modules 1..9); stage 3 runs at a lower rate (at 3e-3 its loss stayed flat); stage 4 is a short,
# gentle joint fine-tune (at 3e-4 / 1e-3 its loss rose).
TOY_SCHEDULE = {
    "stage1_alignment": (1200, 16, {"backbone": 3e-3}),
    "stage2_single_mctp": (400, 16, {"mctp": 3e-3}),
    "stage3_multi_mctp": (250, 8, {"mctp": 1e-3}),
    "stage4_sft": (100, 8, {"backbone": 1e-4, "mctp": 3e-4}),
}


def toy_variant(cfg):
    """The same stage on the toy geometry and the toy corpus, from the previous stage's export."""
    stage = cfg.stage
    cfg.model = model_config("toy").replace(num_mctp_modules=cfg.model.num_mctp_modules).to_dict()
    index = STAGES.index(stage)
    cfg.init.checkpoint = f"{TOY_ROOT}/{STAGES[index - 1]}/final" if index else ""
    cfg.data.update(files=f"{TOY_DATA}/train.jsonl", tokenizer=f"{TOY_DATA}/tokenizer",
                    num_audio_codes=TOY_AUDIO_CODES, seq_len=256, worker_count=0)
    steps, batch, lr = TOY_SCHEDULE[stage]
    cfg.optim.update(lr=lr, weight_decay=0.0)
    cfg.train.update(steps=steps, global_batch_size=batch, log_every=25, workdir=f"{TOY_ROOT}/{stage}", loss_chunk=256)
    cfg.checkpoint.update(every=steps, keep=1, use_async=False)
    cfg.mesh.update(fsdp=1, data=-1, devices=1)
    return cfg
