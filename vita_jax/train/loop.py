"""The training loop: build everything from a run config, resume, step, log, checkpoint, export.

    result = train(config)     # config: see configs/train_base.py
    result.losses              # {step: loss} of the steps this call ran

Stops with TrainingDiverged on a non-finite loss; the last good checkpoint is kept (nothing is
saved after the bad step). Resumes only a run with the same settings (train/run_identity.py).
The tokenizer the run trains with is saved in {workdir}/tokenizer and inside every export, so
the exported model answers `infer.py --prompt`.
"""

import dataclasses
import logging
import os
import time

import jax
import numpy as np
from tqdm import tqdm

from vita_jax.atomic import atomic_directory, check_replaceable
from vita_jax.convert.hf_checkpoint import is_hf_checkpoint
from vita_jax.data.jsonl_source import expand_paths
from vita_jax.data.pipeline import make_batch_iterator, make_encoder
from vita_jax.data.samples import SKIP_REASONS
from vita_jax.data.tokenizer import VocabIds, load_extended_tokenizer
from vita_jax.model import VitaAudioModel
from vita_jax.nn.vita_audio import VitaAudio
from vita_jax.sharding import global_batch, make_mesh
from vita_jax.train.checkpoints import TrainCheckpointer
from vita_jax.train.fused_cross_entropy import check_token_chunk
from vita_jax.train.metrics import MetricsWriter, peak_flops_per_device, train_flops_per_token
from vita_jax.train.model_init import initial_params
from vita_jax.train.optimizer import group_schedules, make_optimizer
from vita_jax.train.param_groups import ENCODER, param_labels
from vita_jax.train.run_identity import RunConfigMismatch, check_resumable, resolve_workdir
from vita_jax.train.train_state import abstract_state, init_train_state, jit_train_step
from vita_jax.train.plus_init import initial_plus_params
from vita_jax.train.train_step import LossConfig, step_inputs


CONTEXT_OF_AUDIO = "<|context_of_audio|>"  # VITA-Audio-Plus's placeholder token


class TrainingDiverged(RuntimeError):
    pass


@dataclasses.dataclass
class TrainResult:
    losses: dict
    final_step: int
    skipped: dict
    final_dir: str = None
    workdir: str = None


# ChatML with the assistant's generation prompt and no default system message (spec section 2),
# saved with a tokenizer that has no template of its own.
CHATML_TEMPLATE = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
                   "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
TOKENIZER_DIR = "tokenizer"  # in the workdir: the tokenizer the run trains with, copied into every export


def _message_texts(path):
    """The string contents of the messages in a jsonl file; malformed lines are left to the data
    pipeline, which skips and counts them."""
    import json

    texts = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                messages = json.loads(line).get("messages", []) if line.strip() else []
            except (ValueError, AttributeError):
                continue
            if isinstance(messages, list):
                texts += [m["content"] for m in messages if isinstance(m, dict) and isinstance(m.get("content"), str)]
    return texts


def build_tokenizer(data_cfg, workdir, extra_special_tokens=()):
    """The configured tokenizer directory, or "tiny": a small BPE trained on the data (demo, tests);
    saved, extended (plus `extra_special_tokens` appended unless present) and with a chat
    template, in {workdir}/tokenizer."""
    if data_cfg.tokenizer != "tiny":
        tokenizer = load_extended_tokenizer(data_cfg.tokenizer, data_cfg.num_audio_codes)
    else:
        from vita_jax.data.tiny_tokenizer import build_tiny_tokenizer

        texts = [text for path in expand_paths(data_cfg.files) for text in _message_texts(path)]
        out = os.path.join(workdir, "tiny_tokenizer")
        build_tiny_tokenizer(texts, out)
        tokenizer = load_extended_tokenizer(out, data_cfg.num_audio_codes)
    missing = [t for t in extra_special_tokens if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_tokens(missing, special_tokens=True)
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = CHATML_TEMPLATE
    if jax.process_index() == 0:
        with atomic_directory(os.path.join(workdir, TOKENIZER_DIR), replaceable=lambda _: True) as tmp:
            tokenizer.save_pretrained(tmp)
    return tokenizer


def trainable_groups(cfg):
    """optim.trainable, plus the Plus encoder when plus.train_encoder."""
    trainable = tuple(cfg.optim.trainable)
    if "plus" in cfg and cfg.plus.enabled and cfg.plus.train_encoder and ENCODER not in trainable:
        trainable += (ENCODER,)
    return trainable


def speech_tokenizer(data_cfg):
    if not data_cfg.speech_tokenizer_dir:
        return None
    from vita_jax.audio.speech_tokenizer import load_tokenizer as load_speech_tokenizer

    return load_speech_tokenizer(data_cfg.speech_tokenizer_dir)


def train(cfg, progress=True, stop_after_steps=None):
    """Run (or resume) the stage described by `cfg` up to cfg.train.steps. `stop_after_steps`:
    return after that many steps of this call without a final save or export, as a preempted
    job would (time-limited jobs, resume drills)."""
    check_token_chunk(cfg.train.loss_chunk, cfg.data.seq_len)
    expand_paths(cfg.data.files)  # inputs and outputs are checked before anything is written
    if cfg.init.checkpoint and not os.path.isdir(cfg.init.checkpoint):
        raise FileNotFoundError(f"--config.init.checkpoint: checkpoint directory not found: {cfg.init.checkpoint}")
    if cfg.export.enabled and cfg.export.hf_dir:
        check_replaceable(os.path.abspath(cfg.export.hf_dir), is_dir=True, replaceable=is_hf_checkpoint)
    workdir = resolve_workdir(cfg)
    os.makedirs(workdir, exist_ok=True)
    logging.info("workdir %s", workdir)
    ckpt = TrainCheckpointer(os.path.join(os.path.abspath(workdir), "checkpoints"), cfg.checkpoint.every,
                             cfg.checkpoint.keep, cfg.checkpoint.use_async)
    config_dict = cfg.to_dict()
    saved_config = ckpt.latest_config()
    if saved_config is not None:  # before anything is written into the workdir
        try:
            check_resumable(saved_config, config_dict, workdir)
        except RunConfigMismatch:
            ckpt.close()
            raise
    mesh = make_mesh(cfg.mesh.data, cfg.mesh.fsdp, cfg.mesh.tensor,
                     devices=jax.devices()[:cfg.mesh.devices] if cfg.mesh.devices else None)
    plus = cfg.plus if "plus" in cfg and cfg.plus.enabled else None
    tokenizer = build_tokenizer(cfg.data, workdir, (CONTEXT_OF_AUDIO,) if plus else ())
    ids = VocabIds.of(tokenizer)
    plus_start, plus_encoding = None, None
    if plus:  # the appended <|context_of_audio|> is no audio code
        ids = dataclasses.replace(ids, num_audio_codes=cfg.data.num_audio_codes)
        context_id = tokenizer.convert_tokens_to_ids(CONTEXT_OF_AUDIO)
        plus_start = initial_plus_params(cfg, ids.vocab_size, context_id, mesh)
        mcfg, params, hf_config, module = plus_start.config, plus_start.params, plus_start.hf_config, plus_start.module
        plus_encoding = (plus_start.frontend, context_id, plus.max_audios_per_row, plus.max_audio_frames)
    else:
        mcfg, params, hf_config = initial_params(cfg, ids.vocab_size, mesh)
        module = VitaAudio(mcfg)
    labels = param_labels(params, trainable_groups(cfg))
    tx = make_optimizer(cfg.optim, cfg.train.steps, labels)
    state, state_sh = init_train_state(params, tx, mesh)

    encoder = make_encoder(cfg.data, tokenizer, ids, speech_tokenizer(cfg.data), plus=plus_encoding)
    data = make_batch_iterator(cfg.data, encoder, cfg.train.global_batch_size)
    restored = ckpt.restore_latest(abstract_state(state, state_sh), data)
    if restored is not None:
        state = restored[0]
        logging.info("resumed from %s at step %d", ckpt.directory, int(state["step"]))

    loss_cfg = LossConfig.of_run(cfg, mcfg)
    step_fn = jit_train_step(module, tx, labels, loss_cfg, state_sh, mesh, cfg.train.microbatches)
    schedules = group_schedules(cfg.optim, cfg.train.steps, labels)
    flops_per_token = train_flops_per_token(mcfg, cfg.data.seq_len, mcfg.num_mctp_modules, loss_cfg.train_backbone)
    peak = peak_flops_per_device(cfg.train.peak_flops_per_device)
    writer = MetricsWriter(os.path.join(workdir, "metrics.jsonl"))

    start = int(state["step"])
    writer.drop_after(start)  # steps an interrupted run logged after its last checkpoint are rerun
    losses, skipped = {}, dict.fromkeys(SKIP_REASONS, 0)
    bar = tqdm(total=cfg.train.steps, initial=start, desc=cfg.stage, unit="step",
               disable=not progress or jax.process_index() != 0)
    window_tokens, window_start, last_saved = 0, None, start
    try:
        end = cfg.train.steps if stop_after_steps is None else min(cfg.train.steps, start + stop_after_steps)
        for step in range(start, end):
            local = next(data)
            for reason, n in zip(SKIP_REASONS, np.asarray(local["skipped"]).sum(axis=0)):
                skipped[reason] += int(n)
            batch = global_batch(step_inputs(local), mesh)
            state, metrics = step_fn(state, batch)
            loss = float(metrics["loss"])
            if not np.isfinite(loss):
                ckpt.wait()
                last = ckpt.steps()
                raise TrainingDiverged(
                    f"non-finite loss {loss} at step {step + 1}; training stopped. Last good checkpoint: "
                    f"{'step ' + str(last[-1]) if last else 'none'} in {ckpt.directory}")
            losses[step + 1] = loss
            window_tokens += int(metrics["tokens"])
            if window_start is None:  # the first step compiles: time from its end
                window_start, window_tokens = time.perf_counter(), 0
            if ckpt.save(step + 1, state, data, config_dict):
                last_saved = step + 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}")
            if (step + 1) % cfg.train.log_every == 0 or step + 1 == cfg.train.steps:
                elapsed = time.perf_counter() - window_start
                record = {"step": step + 1, "loss": loss, **{f"lr/{g}": float(s(step)) for g, s in schedules.items()}}
                if elapsed > 0 and window_tokens:
                    record["tokens_per_s"] = window_tokens / elapsed
                    if peak:
                        record["mfu"] = record["tokens_per_s"] * flops_per_token / (peak * jax.device_count())
                record.update({k: float(v) for k, v in metrics.items() if k != "loss"})
                record.update({f"skipped/{r}": n for r, n in skipped.items()})
                writer.write(record)
                bar.write(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))
                window_tokens, window_start = 0, time.perf_counter()
        if end == cfg.train.steps and last_saved != end:
            ckpt.save(end, state, data, config_dict, force=True)
        ckpt.wait()
    finally:
        bar.close()
        ckpt.close()
        data.close()
    final_dir = None
    if cfg.export.enabled and end == cfg.train.steps:
        final_dir = export(cfg, mcfg, state["params"], hf_config, workdir, plus_start)
    return TrainResult(losses=losses, final_step=int(state["step"]), skipped=skipped, final_dir=final_dir,
                       workdir=workdir)


def export(cfg, mcfg, params, hf_config, workdir, plus_start=None):
    """{workdir}/final (this project's checkpoint: the next stage's init.checkpoint) and, when
    export.hf_dir is set, the Hugging Face layout; both carry the run's tokenizer (and, for
    VITA-Audio-Plus, the front end's am.mvn)."""
    if jax.process_count() > 1:
        logging.warning("export skipped in a multi-process run: rerun the same command in one process "
                        "(it restores the final checkpoint, trains no further and exports)")
        return None
    final_dir = os.path.join(workdir, "final")
    side = os.path.join(workdir, TOKENIZER_DIR)
    if plus_start is not None:
        model = plus_model(plus_start, mcfg, jax.device_get(params), side)
    else:
        model = VitaAudioModel(mcfg, jax.device_get(params), hf_config, side_files_dir=side)
    model.save(final_dir)
    if cfg.export.hf_dir:
        model.save_pretrained(cfg.export.hf_dir, dtype=cfg.export.dtype)
    return final_dir


def plus_model(plus_start, mcfg, params, side):
    """The trained PlusModel; the am.mvn joins the run's tokenizer files in `side`."""
    import shutil

    from vita_jax.convert.plus_checkpoint import CMVN_FILE, read_plus_tokens
    from vita_jax.plus import PlusModel

    shutil.copy2(plus_start.cmvn_file, os.path.join(side, CMVN_FILE))
    return PlusModel(mcfg, params, plus_start.audio_config, plus_start.frontend, read_plus_tokens(side),
                     plus_start.hf_config, side)
