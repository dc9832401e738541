"""`generate`, `stream` and `decode`: validate on the host, then run one compiled program.

One program per (mode plan, batch, prompt bucket, max_new_tokens bucket, sampling shape) and
model: prompts are padded to a bucket (`prompt_bucket`: 16, 24, 32, 48, 64, 96, ...) and
max_new_tokens, eos ids, temperature, top-p, the penalty value and the seed are runtime
arguments, so a new prompt of the same bucket does not recompile. Every check that can fail runs before compilation.
"""

import dataclasses
import functools
import queue
import threading
import typing

import jax
import jax.numpy as jnp
import numpy as np

from vita_jax import vocabulary
from vita_jax.decode.lossless import run_lossless
from vita_jax.decode.loop import run_schedule, run_steady
from vita_jax.decode.sampling import Sampling
from vita_jax.decode.schedule import Plan, is_lossless, plan_for
from vita_jax.decode.state import StepContext, init_state
from vita_jax.decode.streaming import RowEvents, notifier, register, unregister

DEFAULT_EOS = vocabulary.EOS_TOKEN_IDS
MIN_BUCKET = 16
MAX_EOS_IDS = 8  # eos ids are padded to this many (with -1) so their number does not recompile


@dataclasses.dataclass(frozen=True)
class ProgramSpec:
    """The static shape of a decoding program. plan None: lossless with `num_draft` drafts."""

    plan: typing.Optional[Plan]
    num_draft: int
    slots: int
    sampling: typing.Any  # SamplingStatic
    forced: typing.Any = None  # ForcedInterleave (a logits mask forcing the interleaving) or None
    resumable: bool = False  # the program also returns its state, which `resume_program` continues


@dataclasses.dataclass
class Request:
    """A validated call: the program's static spec and its runtime arguments."""

    spec: ProgramSpec
    prompt: np.ndarray          # [B, bucket]
    prompt_length: np.ndarray   # [B]
    max_new_tokens: int
    eos_ids: tuple
    pad_token_id: int
    sampling: Sampling
    prompt_inputs: typing.Any = None  # arrays for the module's `prompt_embeddings` (Plus audio), or None


@dataclasses.dataclass
class DecodeResult:
    sequences: np.ndarray     # [B, N] generated ids, padded with pad_token_id after a row stops
    num_tokens: np.ndarray    # [B] generated per row
    backbone_forwards: int    # forwards executed (each over the whole batch)
    module_forwards: list     # per module k
    acceptance: list = None   # lossless: per draft depth k, fraction of rounds whose draft k was kept


def bucket(n):
    """Smallest power of two >= max(n, MIN_BUCKET)."""
    return max(MIN_BUCKET, 1 << (int(n) - 1).bit_length())


def prompt_bucket(n):
    """Smallest of 16, 24, 32, 48, 64, 96, 128, ... (2**k and 3 * 2**(k-1)) >= n: the prefill
    runs over at most 1/3 padding (a power of two alone padded the release's 96-token spoken-chat
    prompt to 128 slots), for twice as many prompt programs."""
    power = bucket(n)
    three_quarters = power // 4 * 3
    return three_quarters if power > MIN_BUCKET and n <= three_quarters else power


def prompt_buckets(limit):
    """Every prompt bucket of at most `limit` tokens, smallest first (what a server compiles ahead)."""
    sizes = []
    while (size := prompt_bucket(sizes[-1] + 1 if sizes else 1)) <= limit:
        sizes.append(size)
    return sizes


def prompt_rows(input_ids):
    """[T] / [B, T] array or a list of id lists (rows may differ in length) -> list of int32 rows."""
    if isinstance(input_ids, (np.ndarray, jax.Array)) or (input_ids and np.isscalar(input_ids[0])):
        array = np.asarray(input_ids)
        if array.ndim not in (1, 2):
            raise ValueError(f"input_ids must be [length] or [batch, length], got shape {array.shape}")
        rows = list(np.atleast_2d(array))
    else:
        rows = [np.asarray(row) for row in input_ids]
    if not rows:
        raise ValueError("input_ids is empty: give at least one prompt")
    for i, row in enumerate(rows):
        if row.ndim != 1 or row.size == 0:
            raise ValueError(f"prompt {i} is empty or not a flat list of ids (shape {row.shape})")
        if not np.issubdtype(row.dtype, np.integer):
            raise ValueError(f"prompt {i} holds non-integer ids (dtype {row.dtype})")
    return [row.astype(np.int64) for row in rows]


def prepare(model, input_ids, mode="turbo", max_new_tokens=128, eos_token_ids=DEFAULT_EOS, pad_token_id=None,
            max_cache_length=None, num_draft=None, do_sample=False, temperature=1.0, top_k=0, top_p=1.0,
            repetition_penalty=1.0, seed=0, prompt_inputs=None, forced_interleave=None, resumable=False):
    """Validate everything and build the Request (raises ValueError naming the bad value).
    `prompt_inputs`: keyword arrays of the module's `prompt_embeddings(prompt, ...)`, which then
    gives the prompt's backbone input embeddings at prefill (the Plus model's audio).
    `forced_interleave`: a decode.forced_pattern.ForcedInterleave (benchmarks on random weights).
    `resumable`: a program that can pause (see `stream`'s `resume_gate`); scheduled modes only."""
    config = model.config
    rows = prompt_rows(input_ids)
    for i, row in enumerate(rows):
        if row.min() < 0 or row.max() >= config.vocab_size:
            raise ValueError(f"prompt {i}: token ids outside the vocabulary [0, {config.vocab_size}): "
                             f"min {row.min()}, max {row.max()}")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, (int, np.integer)) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be an integer >= 1, got {max_new_tokens!r}")
    sampling = Sampling(do_sample, temperature, top_k, top_p, repetition_penalty, seed)
    num_modules = config.num_mctp_modules
    longest = max(len(row) for row in rows)
    prompt_slots = prompt_bucket(longest)
    if is_lossless(mode):
        plan, num_draft = None, num_modules if num_draft is None else num_draft
        if not 1 <= num_draft <= num_modules:
            raise ValueError(f"lossless mode: num_draft {num_draft} must be in [1, {num_modules}] "
                             f"(the model has {num_modules} MCTP modules)")
        if do_sample or repetition_penalty != 1.0:
            raise ValueError("lossless mode verifies greedy tokens: use do_sample=False and repetition_penalty=1.0")
        if forced_interleave is not None:
            raise ValueError("forced_interleave applies to the scheduled modes, not to lossless")
        if resumable:
            raise ValueError("lossless mode cannot pause and resume (resumable / resume_gate): use a scheduled mode")
        reach, used = 2 * num_draft, num_draft
    else:
        if num_draft is not None:
            raise ValueError(f"num_draft={num_draft} only applies to mode 'lossless', not {mode!r}")
        plan, num_draft = plan_for(mode, num_modules, prompt_slots), 0
        # the steady cycles read at most a chunk past the tokens; the transient ones (the modules'
        # prompt-wide first chunks among them) never past plan.transient_tokens
        reach = max(plan.steady_chunk, plan.transient_tokens - prompt_slots - bucket(max_new_tokens))
        used = plan.num_modules
    limit = config.max_position_embeddings if max_cache_length is None else max_cache_length
    if longest + max_new_tokens > limit:
        raise ValueError(f"prompt of {longest} tokens + max_new_tokens {max_new_tokens} exceeds the cache of "
                         f"{limit} positions (max_cache_length)")
    eos_ids = tuple(int(t) for t in eos_token_ids)
    if len(eos_ids) > MAX_EOS_IDS:
        raise ValueError(f"at most {MAX_EOS_IDS} eos_token_ids, got {len(eos_ids)}: {eos_ids}")
    if pad_token_id is None:
        pad_token_id = eos_ids[0] if eos_ids else 0
    prompt = np.zeros((len(rows), prompt_slots), np.int32)
    for i, row in enumerate(rows):
        prompt[i, :len(row)] = row
    slots = prompt_slots + bucket(max_new_tokens) + reach + used + 2
    spec = ProgramSpec(plan, num_draft, slots, sampling.static, forced_interleave, bool(resumable))
    return Request(spec, prompt, np.array([len(r) for r in rows], np.int32), int(max_new_tokens), eos_ids,
                   int(pad_token_id), sampling, prompt_inputs)


# XLA:CPU hands every dot to a YNNPACK fusion by default. For the few-row products of decoding
# (1 to K+1 new tokens per forward, each reading every weight) its own dot emitter is up to ~2x
# faster: Turbo's 128 tokens on the 0.5B geometry took 4.75 s against 6.05 s (docs/decoding.md). Bigger products
# (the speech tokenizer, the speech decoder) keep the default, which is faster for them.
CPU_DECODE_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}


def decode_compiler_options():
    """XLA options of the decoding programs for the current backend (CPU_DECODE_OPTIONS on CPU)."""
    return CPU_DECODE_OPTIONS if jax.default_backend() == "cpu" else None


class Jitted(typing.NamedTuple):
    decode: typing.Any
    resume: typing.Any


@functools.cache
def jitted():
    """`decode_program` and `resume_program` (its state donated) under jax.jit with
    decode_compiler_options(); built on first use, when the backend is known."""
    jit = functools.partial(jax.jit, static_argnames=("module", "spec"), compiler_options=decode_compiler_options())
    return Jitted(jit(decode_program), jit(resume_program, donate_argnames=("state",)))


def decode_program(params, prompt, prompt_length, max_new_tokens, eos_ids, key, sampling, listener_id, prompt_inputs,
                   *, module, spec):
    """The whole decoding of one request as one program; compiled once per (module definition, spec)
    and input shapes, shared by every model whose Flax module (a hashable dataclass of frozen
    configs) is equal."""
    ctx = StepContext(module.apply, params, spec.sampling, sampling, eos_ids, prompt_inputs, spec.forced)
    used = spec.plan.num_modules if spec.plan is not None else spec.num_draft
    state = init_state(module.config, prompt, prompt_length, spec.slots, used, spec.sampling.use_penalty, key,
                       max_new_tokens)
    notify = notifier(listener_id)
    if spec.plan is not None:
        state = run_schedule(ctx, state, spec.plan, prompt.shape[1], notify)
    else:
        state = run_lossless(ctx, state, spec.num_draft, prompt.shape[1], notify)
    return (_summary(state), state) if spec.resumable else _summary(state)


def resume_program(params, state, eos_ids, sampling, listener_id, *, module, spec):
    """A paused resumable decoding (spec.resumable, a scheduled mode) continued from the state it
    returned: the steady cycles until every row has stopped or the listener stops it again."""
    ctx = StepContext(module.apply, params, spec.sampling, sampling, eos_ids, None, spec.forced)
    state = run_steady(ctx, state.replace(cancelled=jnp.zeros((), bool)), spec.plan, notifier(listener_id))
    return _summary(state), state


def _summary(state):
    return {"tokens": state.tokens, "length": state.length, "backbone_forwards": state.backbone_forwards,
            "module_forwards": state.module_forwards, "draft_rounds": state.draft_rounds,
            "drafts_accepted": state.drafts_accepted}


def program_arguments(model, request, listener_id=-1):
    return (model.params, jnp.asarray(request.prompt), jnp.asarray(request.prompt_length),
            jnp.int32(request.max_new_tokens), jnp.asarray(eos_padded(request.eos_ids)),
            jax.random.key(request.sampling.seed), request.sampling.dynamic, jnp.int32(listener_id),
            request.prompt_inputs)


def eos_padded(eos_ids):
    return np.array([*eos_ids, *[-1] * (MAX_EOS_IDS - len(eos_ids))], np.int32)


@dataclasses.dataclass(frozen=True)
class Compiled:
    """A request's programs compiled ahead of time: `decode`, and `resume` when it is resumable."""
    decode: typing.Any
    resume: typing.Any = None


def compile_ahead(model, request):
    """The programs of `request` compiled ahead of time (to time compilation apart from running)."""
    decode = jitted().decode.lower(*program_arguments(model, request), module=model.module, spec=request.spec)
    resume = None
    if request.spec.resumable:
        _, state = decode.out_info  # the returned state's shapes, from the one trace
        resume = jitted().resume.lower(*resume_arguments(model, request, state), module=model.module,
                                       spec=request.spec).compile()
    return Compiled(decode.compile(), resume)


def resume_arguments(model, request, state, listener_id=-1):
    return (model.params, state, jnp.asarray(eos_padded(request.eos_ids)), request.sampling.dynamic,
            jnp.int32(listener_id))


def run_program(model, request, listener_id=-1, executable=None):
    """Run the request's program (jitted, or `executable` from compile_ahead); its outputs stay
    on the device: the summary, or (summary, state) for a resumable request."""
    args = program_arguments(model, request, listener_id)
    if executable is not None:
        return executable.decode(*args)
    return jitted().decode(*args, module=model.module, spec=request.spec)


def resume(model, request, state, listener_id=-1, executable=None):
    """Continue a paused resumable decoding from `state` (consumed); returns (summary, state)."""
    args = resume_arguments(model, request, state, listener_id)
    if executable is not None:
        return executable.resume(*args)
    return jitted().resume(*args, module=model.module, spec=request.spec)


def execute(model, request, listener_id=-1, executable=None):
    """Run the program to its end; the summary as numpy arrays."""
    out = run_program(model, request, listener_id, executable)
    return jax.tree.map(np.asarray, out[0] if request.spec.resumable else out)


def result_from(request, out):
    prompt_length = request.prompt_length
    generated = out["length"] - prompt_length
    sequences = np.full((len(generated), int(generated.max())), request.pad_token_id, np.int32)
    for i, (start, count) in enumerate(zip(prompt_length, generated)):
        sequences[i, :count] = out["tokens"][i, start:start + count]
    acceptance = None
    if request.spec.plan is None:
        acceptance = (out["drafts_accepted"] / max(int(out["draft_rounds"]), 1)).tolist()
    return DecodeResult(sequences, generated, int(out["backbone_forwards"]), out["module_forwards"].tolist(),
                        acceptance)


def decode(model, input_ids, executable=None, **options):
    """Generate and return a DecodeResult (ids, per-row counts, forwards run, lossless acceptance).
    Options: see `prepare`."""
    request = prepare(model, input_ids, **options)
    return result_from(request, execute(model, request, executable=executable))


def generate(model, input_ids, **options):
    """Generated ids [B, N], padded after a row stops. Options: see `prepare`."""
    return decode(model, input_ids, **options).sequences


def stream(model, input_ids, tokenizer=None, end_of_audio_id=vocabulary.END_OF_AUDIO,
           audio_offset=vocabulary.AUDIO_OFFSET, num_audio_codes=vocabulary.NUM_AUDIO_CODES, executable=None,
           resume_gate=None, **options):
    """Validate now, then return an iterator of TextEvent / AudioChunkEvent / EndEvent in order,
    produced while the compiled loop runs. Closing the iterator stops the loop at its next cycle.

    `resume_gate` (a threading.Event; one prompt, a scheduled mode): once the output holds its
    first <|end_of_audio|>, the loop PAUSES at its next steady-cycle boundary and goes on when the
    event is set (e.g. once the speech decoder has made that chunk's audio). It pauses by
    returning its state to the host, so it holds no compute thread meanwhile (a wait inside the
    loop's host callback would keep one of XLA:CPU's pool threads); the output is unchanged."""
    if resume_gate is not None:
        options["resumable"] = True
    request = prepare(model, input_ids, **options)
    if resume_gate is not None and len(request.prompt_length) != 1:
        raise ValueError(f"resume_gate pauses a single prompt's decoding, got {len(request.prompt_length)} prompts")
    rows = [RowEvents(i, int(n), request.eos_ids, end_of_audio_id, audio_offset, num_audio_codes, tokenizer)
            for i, n in enumerate(request.prompt_length)]
    return _events(model, request, rows, executable, resume_gate)


def _events(model, request, rows, executable, resume_gate):
    snapshots, closed, outcome = queue.Queue(), threading.Event(), {}
    paused = threading.Event()

    def listener(tokens, length, active):
        snapshots.put((tokens, length, active))
        if resume_gate is not None and not paused.is_set() and rows[0].holds_a_closed_chunk(tokens[0], int(length[0])):
            paused.set()
            return True
        return closed.is_set()

    listener_id = register(listener)

    def worker():
        try:
            out = jax.block_until_ready(run_program(model, request, listener_id, executable))
            if paused.is_set():
                while not (resume_gate.wait(0.05) or closed.is_set()):
                    pass
                if not closed.is_set():
                    jax.block_until_ready(resume(model, request, out[1], listener_id, executable))
        except BaseException as error:  # handed to the consumer below
            outcome["error"] = error
        finally:
            snapshots.put(None)

    thread = threading.Thread(target=worker, name="vita-jax-decode", daemon=True)
    thread.start()
    try:
        while (snapshot := snapshots.get()) is not None:
            tokens, length, active = snapshot
            for row in rows:
                yield from row.update(tokens[row.row], int(length[row.row]), bool(active[row.row]))
        if "error" in outcome:
            raise outcome["error"]
    finally:
        closed.set()
        thread.join()
        unregister(listener_id)
