"""Where a sample's audio codes come from (pluggable), in order of preference:

1. the record itself: `"audio_codes": [[c, ...], ...]`, one list per entry of `"audios"`;
2. a code cache: jsonl files of `{"file": path, "codes": [...]}` lines, as written by
   `python -m vita_jax.audio.encode --json` (keys are the paths as written in the data);
3. a speech tokenizer (any object with `encode(path) -> codes`, e.g. the GLM-4-Voice one of
   vita_jax.audio.speech_tokenizer), called for files found in neither.
"""

import json
import os


class MissingAudio(LookupError):
    """An audio file with no codes anywhere (and no file to tokenize)."""


def read_code_cache(paths):
    """{file: [codes]} from encode-CLI jsonl files."""
    cache = {}
    for path in paths:
        with open(path) as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        item = json.loads(line)
                        cache[item["file"]] = [int(c) for c in item["codes"]]
                    except (ValueError, KeyError, TypeError) as err:
                        raise ValueError(f"{path}:{n}: bad code cache line ({err})") from err
    return cache


class AudioCodeResolver:
    """codes_for(record) -> one list of codes per entry of record["audios"]."""

    def __init__(self, cache=None, speech_tokenizer=None, data_root=""):
        self.cache = cache or {}
        self.speech_tokenizer = speech_tokenizer
        self.data_root = data_root

    def codes_for(self, record):
        audios = record.get("audios") or []
        if "audio_codes" in record:
            codes = record["audio_codes"]
            if len(codes) != len(audios):
                raise ValueError(f"{len(codes)} audio_codes lists for {len(audios)} audios")
            return [[int(c) for c in item] for item in codes]
        return [self._codes_of_file(path) for path in audios]

    def _codes_of_file(self, path):
        if path in self.cache:
            return self.cache[path]
        full = os.path.join(self.data_root, path)
        if not os.path.isfile(full):
            raise MissingAudio(f"audio file not found: {full}")
        if self.speech_tokenizer is None:
            raise MissingAudio(f"no codes for {path}: not in the record, not in the code cache, "
                               "and no speech tokenizer configured (data.speech_tokenizer_dir)")
        return [int(c) for c in self.speech_tokenizer.encode(full)]
