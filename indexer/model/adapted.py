"""A model adapted to one home's catalog (`shoplens adapt`): a folder that names a registered base model and the
projection heads trained on the catalog, loaded through the same encoder factory as every other spec.

Layout of `<home>/models/<base>-<fingerprint>/` (written whole into a staging folder and renamed, so a folder that
exists is complete and never changes; a retrained model gets a new folder):
- `shoplens_model.json`: `{"base": "shoplens-lite", "heads": "heads.pt", "blend": {...}}` plus what adapt recorded;
- `heads.pt`: the heads checkpoint, in the format `shoplens train-model` writes;
- `MODEL_CARD.md`, `adapt.json` (data, split, recipe, metrics before and after) and `training_products.txt` (one
  product id a line: what `shoplens eval` flags and `--strict` refuses, with the base model's own training products).

Which model a home indexes with is not stored apart from the index: it is the model of the published version when
that is one of the home's adapted models (`home_model_spec`), so `shoplens index --rollback` and
`shoplens adapt --reset` switch the model together with the vectors, and a killed adapt changes neither.
"""
from __future__ import annotations

import json
from pathlib import Path

from indexer.config import DEFAULT_MODEL, Settings
from indexer.errors import WeightsUnavailable
from indexer.vectors import current_version, read_manifest

MODEL_FILE = "shoplens_model.json"
HEADS_FILE = "heads.pt"
TRAINED_ON_FILE = "training_products.txt"  # the name search.evaluation.heldout reads
MODELS_DIR = "models"
SPEC_PREFIX = "local-dir:"


def is_adapted_folder(path: Path) -> bool:
    return (path / MODEL_FILE).is_file()


def read_model_file(folder: Path) -> dict:
    try:
        return json.loads((folder / MODEL_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise WeightsUnavailable(f"{folder / MODEL_FILE} cannot be read: {exc}",
                                 hint="Run `shoplens adapt` again, or `shoplens adapt --reset`.") from None


def spec_of(folder: Path) -> str:
    """The encoder spec (and name) of an adapted model folder."""
    return f"{SPEC_PREFIX}{folder.resolve()}"


def folder_of(spec: str | None) -> Path | None:
    """The adapted model folder a spec names, or None for any other spec."""
    if not spec or not spec.startswith(SPEC_PREFIX):
        return None
    folder = Path(spec.removeprefix(SPEC_PREFIX))
    return folder if is_adapted_folder(folder) else None


def published_model(settings: Settings) -> str | None:
    """The model the home's published index version was built with (None before the first publish)."""
    name = current_version(settings.index_dir)
    return read_manifest(settings.index_dir, name).get("model") if name else None


def home_model_spec(settings: Settings) -> str:
    """The model this home indexes with: the setting when one was given (`--model`, `SHOPLENS_MODEL`), else the
    published version's model when it is one of this home's adapted models, else the installed default."""
    if settings.model_spec:
        return settings.model_spec
    published = published_model(settings)
    folder = folder_of(published)
    if folder is not None and folder.resolve().parent == (settings.home / MODELS_DIR).resolve():
        return published
    return DEFAULT_MODEL
