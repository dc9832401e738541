"""Reading a JSON object from a file with errors that name the file."""

import json
import os


class JsonFileError(ValueError):
    """A JSON file that is missing, unreadable, malformed or not an object. The message names it."""


def read_json(path):
    """The JSON object stored at `path`."""
    if not os.path.isfile(path):
        raise JsonFileError(f"missing {os.path.basename(path)}: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as err:
        raise JsonFileError(f"cannot parse {path}: {err}") from err
    if not isinstance(data, dict):
        raise JsonFileError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data
