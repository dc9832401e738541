"""Speech in, speech out: the LLM, the GLM-4-Voice speech tokenizer and decoder joined.

    chat = VoiceChat.from_dirs("VITA-Audio-Boost", "glm-4-voice-tokenizer", "glm-4-voice-decoder",
                               mode="boost", flow_steps=1)
    for event in chat.chat_stream(speech="question.wav"):   # Note / TextDelta / AudioChunk ... TurnEnd
        ...
    chat.asr("question.wav") -> text          chat.tts("Hello", voice="me.wav") -> wav (22.05 kHz)
    (asr_stream / tts_stream stream the same events)

A VITA-Audio-Plus checkpoint (model_type qwen2_mtp_sensevoice) needs no speech tokenizer
(`from_dirs(plus_dir, None, decoder_dir)`): user speech enters as `<|context_of_audio|>`
placeholders whose rows the SenseVoice encoder + adapter give at prefill (pipeline/speech_input.py);
earlier turns' audios stay in the history as placeholders and are encoded again at each prefill.

Prompts are spec section 10's. Chat keeps a multi-turn history (text and audio codes of every
turn, dropping the oldest turns with a Note when the cache would overflow); asr and tts are
single-turn. While the LLM generates (its compiled loop in its own thread), a second thread turns
each <|end_of_audio|> chunk of codes into audio behind a bounded queue, so chunk k is decoded while
chunk k+1 is generated. Closing the stream early stops both threads (the LLM at its next cycle).

Timings (TurnEnd.timings, seconds since the input was read): tokenize_s (speech tokenizer),
compile_s (LLM program, 0 when cached), prefill_s (generation start to the first token),
first_text_s (the first text token's event), first_audio_s, total_s, audio_s (answer length), rtf (total_s / audio_s).
"""

import os
import queue
import threading
import time
import weakref

import numpy as np

from vita_jax.audio.streaming_decoder import DEFAULT_CONTEXT_TOKENS
from vita_jax.audio.wav_io import AudioLoadError
from vita_jax.data.tokenizer import END_OF_TEXT, TokenizerError, VocabIds, audio_token, extend_tokenizer
from vita_jax.decode import AudioChunkEvent, EndEvent, TextEvent
from vita_jax.decode.decoder import compile_ahead, prepare, stream
from vita_jax.decode.forced_pattern import ForcedInterleave
from vita_jax.decode.schedule import is_lossless
from vita_jax.pipeline.conversation import Conversation, check_fits
from vita_jax.pipeline.events import AudioChunk, Note, TextDelta, TurnEnd
from vita_jax.pipeline.prompts import ASR_REQUEST, CHAT_SYSTEM, TTS_REQUEST, VOICE_SYSTEM, PromptBuilder, \
    spoken_chat_content
from vita_jax.pipeline.speech_input import CodeInput, ContinuousInput, plus_vocab_ids
from vita_jax.pipeline.speech_output import POLICIES, SpeechWorker, make_policy
from vita_jax.plus.model import PlusModel, is_plus_checkpoint


_executables = weakref.WeakKeyDictionary()  # model -> {(spec, prompt shape, audio shapes): compiled program}


class PipelineSetupError(ValueError):
    """One of the three parts is missing, unreadable or does not fit the others; the message says which."""


def _load_part(what, path, load):
    if not os.path.isdir(path):
        raise PipelineSetupError(f"{what} directory not found: {path}")
    try:
        return load(path)
    except (OSError, ValueError, KeyError) as error:
        raise PipelineSetupError(f"{what} ({path}): {error}") from error


def load_text_tokenizer(llm_dir, tokenizer_dir, num_audio_codes=None):
    """The LLM's tokenizer (saved beside its weights), extended for VITA-Audio if it is not yet
    (num_audio_codes None: as saved, for VITA-Audio-Plus whose ids are read by string)."""
    from transformers import AutoTokenizer

    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # its note that config.json's model_type (qwen2_mtp) is unknown to it
    try:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    except (OSError, ValueError) as error:
        raise PipelineSetupError(f"LLM checkpoint ({llm_dir}): no usable tokenizer files (tokenizer.json, "
                                 f"tokenizer_config.json) in {tokenizer_dir}: {error}") from error
    finally:
        hf_logging.set_verbosity(verbosity)
    if num_audio_codes is None:
        return tokenizer
    try:
        if tokenizer.convert_tokens_to_ids(audio_token(0)) in (None, tokenizer.unk_token_id):
            return extend_tokenizer(tokenizer, num_audio_codes, source=tokenizer_dir)
        return extend_tokenizer(tokenizer, len(tokenizer) - tokenizer.convert_tokens_to_ids(audio_token(0)),
                                source=tokenizer_dir)
    except TokenizerError as error:
        raise PipelineSetupError(f"LLM checkpoint ({llm_dir}): {error}") from error


def check_vocabularies(model, ids, speech_tokenizer, speech_decoder, names=("LLM", "speech tokenizer",
                                                                             "speech decoder")):
    """The LLM's audio tokens, the speech tokenizer's codes and the decoder's code table agree."""
    llm, tok, dec = names
    if speech_tokenizer is None:  # VITA-Audio-Plus: speech in needs no codes
        tok, codes = f"{llm} tokenizer", ids.num_audio_codes
    else:
        codes = speech_tokenizer.model_config.codebook_size
    if ids.num_audio_codes != codes:
        raise PipelineSetupError(
            f"vocabulary mismatch: the {llm} tokenizer has {ids.num_audio_codes} audio tokens (<|audio_0|> = id "
            f"{ids.audio_offset}) but the {tok} has {codes} codes")
    if model.config.vocab_size < ids.vocab_size:
        raise PipelineSetupError(f"vocabulary mismatch: the {llm} has vocab_size {model.config.vocab_size}, fewer "
                                 f"than its tokenizer's {ids.vocab_size} tokens (audio tokens up to id "
                                 f"{ids.audio_offset + ids.num_audio_codes - 1})")
    if speech_decoder.cfg.flow.vocab_size < codes:
        raise PipelineSetupError(f"vocabulary mismatch: the {dec} knows {speech_decoder.cfg.flow.vocab_size} codes, "
                                 f"the {tok} makes {codes}")


class VoiceChat:
    """The pipeline. Options: mode, max_new_tokens, max_cache_length, sampling and the other options
    of `generate` (passed through); speech_policy "bounded" (default: constant cost per chunk) |
    "release" (re-decode everything at each chunk, as the release), flow_steps (the decoder's
    CFM steps; the release streams with 1, decodes offline with 10; None: the decoder's config),
    context_tokens (bounded policy), decoder_key (PRNG key of the decoder's noise), queue_size,
    first_chunk_alone (default True; lossless mode ignores it): the LLM pauses once it has closed
    the first audio chunk, until that chunk is audio, so the first chunk's decode gets every core
    (the first audio leaves ~0.2 s sooner on 2 cores; the output is the same)."""

    def __init__(self, model, text_tokenizer, speech_tokenizer, speech_decoder, mode="turbo", max_new_tokens=1024,
                 max_cache_length=None, speech_policy="bounded", flow_steps=1, context_tokens=DEFAULT_CONTEXT_TOKENS,
                 decoder_key=None, queue_size=4, eos_token_ids=None, first_chunk_alone=True, **generate_options):
        self.model, self.text_tokenizer = model, text_tokenizer
        self.speech_tokenizer, self.speech_decoder = speech_tokenizer, speech_decoder
        if isinstance(model, PlusModel):
            self.ids = plus_vocab_ids(text_tokenizer, model.tokens)
            self.speech_input = ContinuousInput(model)
        elif speech_tokenizer is None:
            raise PipelineSetupError("speech tokenizer: none given; a VITA-Audio checkpoint takes speech as "
                                     "GLM-4-Voice codes (only a VITA-Audio-Plus checkpoint needs no speech tokenizer)")
        else:
            self.ids = VocabIds.of(text_tokenizer)
            self.speech_input = CodeInput(speech_tokenizer, self.ids)
        check_vocabularies(model, self.ids, speech_tokenizer, speech_decoder)
        self.prompts = PromptBuilder(text_tokenizer, self.ids, self.speech_input.span)
        if eos_token_ids is None:  # <|im_end|>, <|endoftext|> (spec section 2) of this tokenizer
            eos_token_ids = (self.ids.im_end, text_tokenizer.convert_tokens_to_ids(END_OF_TEXT))
        self.eos_ids = tuple(int(t) for t in eos_token_ids)
        self.cache_length = model.config.max_position_embeddings if max_cache_length is None else max_cache_length
        self.generate_options = dict(mode=mode, max_new_tokens=max_new_tokens, max_cache_length=self.cache_length,
                                     eos_token_ids=self.eos_ids,
                                     resumable=bool(first_chunk_alone) and not is_lossless(mode), **generate_options)
        if speech_policy not in POLICIES:
            raise ValueError(f"unknown speech streaming policy {speech_policy!r}; choose one of {', '.join(POLICIES)}")
        self.speech_options = dict(name=speech_policy, n_timesteps=speech_decoder.steps(flow_steps),
                                   context_tokens=context_tokens, key=decoder_key)
        self.queue_size = queue_size
        self.conversation = Conversation(self.prompts.message("system", CHAT_SYSTEM))

    @classmethod
    def from_dirs(cls, llm_dir, speech_tokenizer_dir, speech_decoder_dir, param_dtype=None, **options):
        """Load the three parts: an LLM checkpoint (Hugging Face or this project's layout, with its
        tokenizer), a GLM-4-Voice tokenizer and decoder (original or converted layouts). A
        VITA-Audio-Plus checkpoint needs no speech tokenizer: `speech_tokenizer_dir` may be None
        (it is not loaded)."""
        import vita_jax
        from vita_jax.audio import load_decoder, load_tokenizer
        from vita_jax.plus import load_plus

        plus = _load_part("LLM checkpoint", llm_dir, is_plus_checkpoint)
        speech_tokenizer = None
        if not plus:
            if speech_tokenizer_dir is None:
                raise PipelineSetupError(f"speech tokenizer: none given; {llm_dir} is a VITA-Audio checkpoint, which "
                                         f"takes speech as GLM-4-Voice codes (only VITA-Audio-Plus needs none)")
            speech_tokenizer = _load_part("speech tokenizer", speech_tokenizer_dir, load_tokenizer)
        if speech_decoder_dir is None:
            raise PipelineSetupError("speech decoder: none given (the GLM-4-Voice decoder speaks the answers)")
        speech_decoder = _load_part("speech decoder", speech_decoder_dir, load_decoder)
        load = load_plus if plus else vita_jax.load_pretrained
        model = _load_part("LLM checkpoint", llm_dir, lambda path: load(path, param_dtype=param_dtype, progress=False))
        codes = None if plus else speech_tokenizer.model_config.codebook_size
        tokenizer = load_text_tokenizer(llm_dir, model.side_files_dir or llm_dir, codes)
        return cls(model, tokenizer, speech_tokenizer, speech_decoder, **options)

    # ---- prompts (spec section 10) ---------------------------------------------------------------
    def chat_prompt(self, audio=None, text=None):
        """(user message ids, prompt ids, note or None) of a chat turn: the conversation so far (its
        oldest turns dropped for good if they would not fit) + this user turn + the generation prompt.
        `audio`: the speech input's item (codes; for Plus the 16 kHz wave)."""
        user = self.prompts.message("user", spoken_chat_content(text, audio is not None),
                                    [audio] if audio is not None else [])
        prompt, note = self.conversation.prompt(user, self.prompts.generation_prompt(), self._prompt_budget())
        return user, prompt, note

    def asr_prompt(self, audio):
        return self._fits(self.prompts.message("user", ASR_REQUEST, [audio]) + self.prompts.generation_prompt())

    def tts_prompt(self, text, voice=None):
        system = self.prompts.message("system", VOICE_SYSTEM, [voice]) if voice is not None else []
        return self._fits(system + self.prompts.message("user", TTS_REQUEST + text) + self.prompts.generation_prompt())

    # ---- tasks ---------------------------------------------------------------------------------
    def chat_stream(self, speech=None, text=None, sample_rate=None):
        """One spoken-chat turn (speech and/or text in); the finished turn joins the history."""
        start, wav = self._read(speech, sample_rate)
        audio, tokenize_s = self._tokenize(wav, start)
        user, prompt, note = self.chat_prompt(audio, text)
        new_audios = self._continuous([audio])

        def remember(turn):
            self.conversation.add(user, self.prompts.assistant_turn(turn.token_ids, self.eos_ids), new_audios)

        return self._run(prompt, start, tokenize_s, speak=True, notes=[note] if note else [], on_end=remember,
                         audios=self.conversation.audios() + new_audios)

    def chat(self, speech=None, text=None, sample_rate=None):
        return _last(self.chat_stream(speech, text, sample_rate))

    def asr_stream(self, speech, sample_rate=None):
        start, wav = self._read(speech, sample_rate)
        audio, tokenize_s = self._tokenize(wav, start)
        return self._run(self.asr_prompt(audio), start, tokenize_s, speak=False, audios=self._continuous([audio]))

    def asr(self, speech, sample_rate=None):
        return _last(self.asr_stream(speech, sample_rate)).text

    def tts_stream(self, text, voice=None, sample_rate=None):
        """`voice`: a reference recording (path or array at `sample_rate`) given as the release's
        voice prompt (system "Your Voice: <|audio|>\\n"; the decoder gets no speaker prompt)."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError("tts needs a non-empty text")
        start, wav = self._read(voice, sample_rate)
        audio, tokenize_s = self._tokenize(wav, start)
        return self._run(self.tts_prompt(text, audio), start, tokenize_s, speak=True, audios=self._continuous([audio]))

    def tts(self, text, voice=None, sample_rate=None):
        return _last(self.tts_stream(text, voice, sample_rate)).wav

    def reset(self):
        """Forget the conversation's turns (the system message stays)."""
        self.conversation.clear()

    def compile_for_prompt(self, length):
        """Compile (once per model and shape) the decoding program of a `length`-token prompt under
        the current options, so that no turn later waits for it (the server's warm-up)."""
        self._executable(prepare(self.model, [[0] * length], **self.generate_options))

    def compiled_programs(self):
        """The decoding programs compiled so far for this model: batch, prompt bucket, cache slots."""
        return [{"batch": shape[0], "prompt_bucket": shape[1], "cache_slots": spec.slots, "lossless": spec.plan is None}
                for spec, shape, _ in _executables.get(self.model, {})]

    def force_boost_pattern(self):
        """Answer in the release's Boost text/audio pattern, forced by a logits mask (random weights
        never close an audio span; decode/forced_pattern.py). Text: the ids below <|begin_of_image|>
        (<|begin_of_audio|> - 9, the first of the VITA-Audio specials), the eos ids excluded."""
        ids = self.ids
        self.generate_options["forced_interleave"] = ForcedInterleave(
            ids.begin_of_audio, ids.end_of_audio, ids.audio_offset, ids.num_audio_codes,
            text_end=ids.begin_of_audio - 9, not_text=self.eos_ids)

    # ---- steps ---------------------------------------------------------------------------------
    def _read(self, speech, sample_rate):
        """(time the input was read, 16 kHz wav or None)."""
        if speech is None:
            return time.perf_counter(), None
        if not isinstance(speech, (str, os.PathLike)) and sample_rate is None:
            raise AudioLoadError("speech given as an array needs its sample_rate")
        wav = self.speech_input.load(speech, sample_rate)
        return time.perf_counter(), wav

    def _tokenize(self, wav, start):
        """(the prompt's item for `wav`: codes, or for Plus the wave itself; seconds since `start`)."""
        if wav is None:
            return None, 0.0
        audio = self.speech_input.encode(wav)
        return audio, time.perf_counter() - start

    def _continuous(self, audios):
        """The items among `audios` the decoding program encodes at prefill (Plus: all given)."""
        return [a for a in audios if a is not None] if self.speech_input.continuous else []

    def _prompt_budget(self):
        """Prompt tokens that leave room for max_new_tokens in the cache."""
        return self.cache_length - self.generate_options["max_new_tokens"]

    def _fits(self, prompt):
        check_fits(len(prompt), self._prompt_budget())
        return prompt

    def _executable(self, request):
        """The decoding program of `request`, compiled once per model and shape."""
        programs = _executables.setdefault(self.model, {})
        audio_shapes = tuple((k, v.shape) for k, v in sorted((request.prompt_inputs or {}).items()))
        key = (request.spec, request.prompt.shape, audio_shapes)
        if key not in programs:
            programs[key] = compile_ahead(self.model, request)
        return programs[key]

    def _run(self, prompt, start, tokenize_s, speak, notes=(), on_end=None, audios=()):
        """`audios`: the continuous audios of `prompt` in placeholder order (Plus)."""
        inputs = self.speech_input.prompt_inputs(prompt, audios)
        request = prepare(self.model, [prompt], prompt_inputs=inputs, **self.generate_options)  # validates first
        return self._events(request, prompt, start, tokenize_s, speak, list(notes), on_end)

    def _events(self, request, prompt, start, tokenize_s, speak, notes, on_end):
        clock = lambda: time.perf_counter() - start  # noqa: E731
        for note in notes:
            yield Note(note)
        compile_start = time.perf_counter()
        executable = self._executable(request)
        record = _TurnRecord(self.speech_decoder.sample_rate, prompt, notes, tokenize_s,
                             compile_s=time.perf_counter() - compile_start)
        outbox, stop = queue.Queue(), threading.Event()
        worker = self._speech_worker(outbox, clock) if speak else None
        pump = threading.Thread(target=self._pump, args=(request, prompt, executable, outbox, stop, worker, clock),
                                name="vita-jax-llm-events", daemon=True)
        pending = {"llm_done", "speech_done"} if speak else {"llm_done"}
        try:
            record.generation_start = clock()
            if worker is not None:
                worker.start()
            pump.start()
            while pending:
                kind, *payload = outbox.get()
                if kind == "error":
                    raise payload[0]
                if kind in pending:
                    pending.discard(kind)
                elif kind == "llm":
                    delta = record.llm_event(*payload)
                    if delta is not None:
                        yield delta
                elif kind == "audio":
                    yield record.audio(*payload)
            turn = record.turn(clock())
            if on_end is not None:
                on_end(turn)
            yield turn
        finally:
            stop.set()
            if worker is not None:
                worker.stop()
            if pump.ident is not None:
                pump.join()
            if worker is not None and worker.thread.ident is not None:
                worker.join()

    def _speech_worker(self, outbox, clock):
        options = self.speech_options
        policy = make_policy(options["name"], self.speech_decoder, options["key"], options["n_timesteps"],
                             options["context_tokens"])
        return SpeechWorker(policy, emit=lambda *chunk: outbox.put(("audio", *chunk)),
                            done=lambda: outbox.put(("speech_done",)), fail=lambda error: outbox.put(("error", error)),
                            clock=clock, queue_size=self.queue_size)

    def _pump(self, request, prompt, executable, outbox, stop, worker, clock):
        """Thread: the LLM's events into `outbox` (stamped), their audio codes to the speech worker."""
        try:
            gate = worker.first_done if worker is not None and request.spec.resumable else None
            events = stream(self.model, [prompt], tokenizer=self.text_tokenizer, end_of_audio_id=self.ids.end_of_audio,
                            audio_offset=self.ids.audio_offset, num_audio_codes=self.ids.num_audio_codes,
                            executable=executable, prompt_inputs=request.prompt_inputs, resume_gate=gate,
                            **self.generate_options)
            try:
                tail = ()
                for event in events:
                    if stop.is_set():
                        return
                    outbox.put(("llm", event, clock()))
                    if worker is not None and isinstance(event, AudioChunkEvent):
                        if not event.closed:
                            tail = event.codes
                        elif not worker.submit(event.codes):
                            return
                    if worker is not None and isinstance(event, EndEvent):
                        worker.end(tail)
            finally:
                events.close()
        except BaseException as error:  # handed to the consumer
            outbox.put(("error", error))
        finally:
            outbox.put(("llm_done",))


class _TurnRecord:
    """What a turn's events add up to: text, ids, codes, audio chunks and their times -> TurnEnd."""

    def __init__(self, sample_rate, prompt, notes, tokenize_s, compile_s):
        self.sample_rate, self.prompt, self.notes = sample_rate, list(prompt), notes
        self.timings = {"prompt_tokens": len(prompt), "tokenize_s": tokenize_s, "compile_s": compile_s}
        self.text, self.token_ids, self.codes, self.wavs, self.chunks, self.llm_times = "", [], [], [], [], []
        self.stop_reason = self.first_token = self.first_text = self.first_audio = None
        self.generation_start = None

    def llm_event(self, event, at):
        """Record one LLM event; returns the TextDelta to yield, if any."""
        self.llm_times.append(at)
        self.first_token = at if self.first_token is None else self.first_token
        if isinstance(event, TextEvent):
            self.first_text = at if self.first_text is None else self.first_text
            self.text += event.text or ""
            return TextDelta(event.text, event.token_ids, at) if event.text else None
        if isinstance(event, AudioChunkEvent):
            self.codes += event.codes
        elif isinstance(event, EndEvent):
            self.stop_reason, self.token_ids = event.reason, list(event.token_ids)
        return None

    def audio(self, wav, decoded, decode_start, ready):
        """Record one decoded piece of audio; returns its AudioChunk."""
        self.first_audio = ready if self.first_audio is None else self.first_audio
        offset = sum(len(w) for w in self.wavs)
        chunk = AudioChunk(wav, self.sample_rate, len(self.wavs), decoded, offset / self.sample_rate, decode_start,
                           ready)
        self.wavs.append(wav)
        self.chunks.append((chunk.index, len(wav), decode_start, ready))
        return chunk

    def turn(self, total):
        audio_s = sum(len(w) for w in self.wavs) / self.sample_rate
        self.timings.update(
            prefill_s=None if self.first_token is None else self.first_token - self.generation_start,
            first_text_s=self.first_text, first_audio_s=self.first_audio, total_s=total, audio_s=audio_s,
            rtf=total / audio_s if audio_s else None, generated_tokens=len(self.token_ids))
        wav = np.concatenate(self.wavs) if self.wavs else np.zeros(0, np.float32)
        return TurnEnd(self.text, self.prompt, self.token_ids, self.codes, wav, self.sample_rate, self.stop_reason,
                       self.timings, self.chunks, self.llm_times, self.notes)


def _last(events):
    turn = None
    for turn in events:
        pass
    return turn
