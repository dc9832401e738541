"""The original GLM-4-Voice code's speed, recorded per machine kind: what the speech benchmarks compare with.

Speeds compare only side by side on one kind of machine, so each record names the kind it was
measured on and the benchmarks use the record that matches the machine they run on (none: they
print no ratio). `benchmarks/original_glm4voice_speed.py` measures a new record.
"""

import os

from benchmarks.machine import cpu_model_and_flags

# Audio seconds per wall second (float32, random weights of the real sizes, median of 3 warm runs);
# decoder offline by number of codes, the first streamed 10-code chunk in wall seconds.
RECORDS = (
    {
        "kind": "2-core AMD EPYC with AVX-512",
        "source": "issue 16 (the original's own token2wav / tokenizer, load ~1-2)",
        "matches": lambda model, cores, flags: "AMD EPYC" in model and cores == 2 and "avx512f" in flags,
        "decoder": {13: 0.203, 63: 0.337, 250: 0.285},
        "first_chunk_s": 3.94,
        "tokenizer": {10: 3.52, 30: 3.01},
    },
    {
        "kind": "2-core AMD EPYC, AVX2 only",
        "source": "benchmarks/original_glm4voice_speed.py --repeats 3, 2026-12-04, load ~1",
        "matches": lambda model, cores, flags: "AMD EPYC" in model and cores == 2 and "avx512f" not in flags,
        "decoder": {12: 0.254, 62: 0.415, 250: 0.317},
        "first_chunk_s": 3.20,
        "tokenizer": {10: 3.82, 30: 3.51},
    },
)


def this_machine_record():
    """The record measured on this machine's kind, or None."""
    model, flags = cpu_model_and_flags()
    return next((r for r in RECORDS if r["matches"](model, os.cpu_count(), flags)), None)


def record_note(record):
    """One line saying which reference the ratios use."""
    if record is None:
        return ("original: no record for this machine kind (measure one with "
                "benchmarks/original_glm4voice_speed.py); no ratios")
    return f"original: recorded on a {record['kind']} ({record['source']}), not measured by this run"


def nearest(table, key, tolerance):
    """table's value for the recorded key within `tolerance` of `key`, or None."""
    near = [k for k in table if abs(k - key) <= tolerance]
    return table[near[0]] if near else None
