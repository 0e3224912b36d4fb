"""One encoder object for every model spec: PIL images and strings in, L2-normalised float32 vectors out.

Specs (all built through open_clip):
- a registered model name (`shoplens-lite`, the default; see `indexer/model/configs/`), optionally with the
  `@fingerprint` suffix that `Encoder.name` carries;
- `ARCH:/path/to/checkpoint.pt`: an open_clip architecture with a local checkpoint file;
- `local-dir:/path` (or a plain folder path): a folder with `open_clip_config.json` and its weights, or a home's
  adapted model (`shoplens_model.json`, indexer/model/adapted.py);
- `ARCH:TAG`: an open_clip pretrained tag, fetched from the model hub, so only where a hub is reachable.
A spec that can't be had raises `WeightsUnavailable` with one line that names the offline alternatives.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from indexer.config import DEFAULT_MODEL, load_settings
from indexer.errors import WeightsUnavailable
from indexer.model.adapted import is_adapted_folder, read_model_file, spec_of
from indexer.model.registry import load_model_config, registered_models
from indexer.model.runtime import TOWERS, ExportFailed, Towers, load_towers, trim_tokens

log = logging.getLogger(__name__)

HUB_HOST = ("huggingface.co", 443)
OFFLINE_ALTERNATIVES = ("use an offline model instead: 'shoplens-lite' (the default, from packaged weights), "
                        "'ARCH:/path/to/checkpoint.pt', or 'local-dir:/path/to/folder' with open_clip_config.json.")


@dataclass(frozen=True)
class Batches:
    """How many inputs one forward pass of each tower takes, however many a caller hands over. Part of a model's
    description, per runtime (eager | onnx): a registered model's config carries its own ("batches"), an open_clip
    architecture has a measured default in `ARCH_BATCHES`, any other model `DEFAULT_BATCHES`."""
    image: int = 8
    text: int = 8

    @classmethod
    def by_runtime(cls, described: dict[str, dict[str, int]]) -> dict[str, Batches]:
        """`{"eager": {"image": 8, "text": 8}, "onnx": {...}}` (a config's "batches") as Batches, defaults filled."""
        return {**DEFAULT_BATCHES, **{runtime: cls(**sizes) for runtime, sizes in described.items()}}


# Measured with bench/encode.py --batches 1,4,8,16,32 on the 2-core machine (bench/RESULTS.md "encode: ViT-B-32"):
# eager PyTorch's ViT wants more rows per matrix product (images 16-32, texts 32); on ONNX Runtime 8 is as fast
# as any. A CNN's small batches keep activations in cache (shoplens-lite's config: images 4, texts 8).
DEFAULT_BATCHES = {"eager": Batches(8, 8), "onnx": Batches(8, 8)}
ARCH_BATCHES = {"ViT-B-32": {"eager": Batches(image=16, text=32), "onnx": Batches(image=8, text=8)}}


class Encoder:
    """Batched, inference-mode encoding with one model; see docs/ARCHITECTURE.md for the contract."""

    def __init__(self, name: str, model: torch.nn.Module, tokenizer: Callable, preprocess: Callable, dim: int,
                 batches: dict[str, Batches] | None = None) -> None:
        self.name = name
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.preprocess = preprocess
        self.dim = dim
        self.batches_by_runtime = batches or DEFAULT_BATCHES
        self.batches = self.batches_by_runtime["eager"]  # the runtime's, once `use_runtime` chose it
        self.towers: Towers | None = None  # the ONNX fast path, when `use_runtime` installed one

    @property
    def runtime(self) -> str:
        return "onnx" if self.towers is not None else "eager"

    @property
    def precision(self) -> dict[str, str]:
        """Each tower's arithmetic: fp32, or int8 where `auto` found the quantised export faithful and faster."""
        return dict(self.towers.precision) if self.towers is not None else dict.fromkeys(TOWERS, "fp32")

    def use_runtime(self, runtime: str, cache_dir: Path, threads: int | None = None) -> None:
        """Run both towers on ONNX Runtime (`onnx`, or `auto`) when the export works and matches eager PyTorch;
        otherwise stay on eager PyTorch and log why. `auto` also runs a tower as int8 where that is faithful and
        faster (indexer.model.runtime). `threads`: ONNX Runtime's intra-op threads (default torch's, which
        `shoplens serve` sets per worker)."""
        if runtime == "eager":
            return
        try:
            image_size = tuple(self.preprocess(Image.new("RGB", (64, 64))).shape)
            probe = self.tokenizer(["a red cotton t-shirt for men", "black leather strap watch", "x"])
            self.towers = load_towers(self.model, cache_dir, image_size, probe, threads, quantize=runtime == "auto")
            self.batches = self.batches_by_runtime["onnx"]
        except (ExportFailed, ImportError) as exc:
            log.log(logging.WARNING if runtime == "onnx" else logging.INFO,
                    "%s runs on eager PyTorch: %s", self.name, exc)

    def __repr__(self) -> str:
        return f"Encoder({self.name!r}, dim={self.dim})"

    def _batched(self, items, fn: Callable[[object], torch.Tensor], size: int) -> np.ndarray:
        if len(items) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = []
        with torch.inference_mode():
            for i in range(0, len(items), size):
                out.append(F.normalize(fn(items[i:i + size]).float(), dim=-1).numpy())
        return np.ascontiguousarray(np.concatenate(out), dtype=np.float32)

    def encode_image_tensors(self, batch: torch.Tensor) -> np.ndarray:
        """Vectors (n, dim) of images already through `preprocess` and stacked."""
        if self.towers is None:
            return self._batched(batch, self.model.encode_image, self.batches.image)
        run = self.towers.image
        return self._batched(batch, lambda chunk: torch.from_numpy(run(np.ascontiguousarray(chunk.numpy()))),
                             self.batches.image)

    def encode_images(self, images: list[Image.Image]) -> np.ndarray:
        """Vectors (n, dim) of PIL images (any mode; converted to RGB by `preprocess`)."""
        if not images:
            return self._batched([], None, 1)
        return self.encode_image_tensors(torch.stack([self.preprocess(im) for im in images]))

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Vectors (n, dim) of strings (tokenised and truncated to the model's context length)."""
        if self.towers is None:
            return self._batched(list(texts), lambda chunk: self.model.encode_text(self.tokenizer(chunk)),
                                 self.batches.text)
        run = self.towers.text
        return self._batched(list(texts), lambda chunk: torch.from_numpy(
            run(trim_tokens(self.model, self.tokenizer(chunk)).numpy())), self.batches.text)


def load_encoder(spec: str | None = None, *, cache_dir: Path | None = None, runtime: str | None = None) -> Encoder:
    """The encoder for `spec` (default: the `model_spec` setting, else the installed default), built once per
    process; converted weights and exported towers are cached in `cache_dir` (default: the `model_cache_dir` setting,
    shared by every home). `runtime` (default: the `inference` setting): auto | onnx | eager (indexer.model.runtime)."""
    if spec is None or cache_dir is None or runtime is None:  # callers that hold Settings pass all three
        settings = load_settings()
        spec, cache_dir, runtime = spec or settings.model_spec or DEFAULT_MODEL, \
            cache_dir or settings.model_cache_dir, runtime or settings.inference
    return _load_cached(spec.strip(), Path(cache_dir), runtime)


def load_version_encoder(manifest: dict, *, default_spec: str | None = None, cache_dir: Path | None = None,
                         runtime: str | None = None) -> Encoder:
    """The encoder an index version (its manifest) was built with; refuses another model.

    Query vectors from other weights than the index's are meaningless (or of another size), so a mismatch
    is an error that says what to do, not a search that quietly returns noise.
    """
    built_with = manifest.get("model") or default_spec
    enc = load_encoder(built_with, cache_dir=cache_dir, runtime=runtime)
    if enc.name != built_with or (manifest.get("dim") and enc.dim != manifest["dim"]):
        raise WeightsUnavailable(
            f"index version {manifest.get('name')} was built with model {built_with} "
            f"(dim {manifest.get('dim')}) but this installation loads {enc.name} (dim {enc.dim})",
            hint="Re-run `shoplens index CATALOG` to rebuild the vectors with the installed model.")
    return enc


@lru_cache(maxsize=4)
def _load_cached(spec: str, cache_dir: Path, runtime: str) -> Encoder:
    encoder = _build(spec, cache_dir)
    encoder.use_runtime(runtime, cache_dir)
    return encoder


def _build(spec: str, cache_dir: Path) -> Encoder:
    base = spec.split("@", 1)[0]
    if base in registered_models():
        return _registered(base, spec, cache_dir)
    if spec.startswith("local-dir:") or Path(spec).is_dir():
        folder = Path(spec.removeprefix("local-dir:")).expanduser()
        if is_adapted_folder(folder):
            return _adapted(folder, cache_dir)
        return _open_clip_local_dir(str(folder))
    arch, sep, source = spec.partition(":")
    if not sep or not source:
        raise WeightsUnavailable(f"unknown model spec '{spec}'.", hint=_spec_help())
    return _open_clip_arch(arch, source, cache_dir)


def _spec_help() -> str:
    return (f"A spec is a registered model ({', '.join(registered_models())}), 'ARCH:/path/to/checkpoint.pt', "
            "'local-dir:/path/to/folder', or 'ARCH:TAG' where a model hub is reachable.")


def _registered(name: str, spec: str, cache_dir: Path) -> Encoder:
    from indexer.model.lite import build_lite

    model, tokenizer, preprocess, canonical = build_lite(name, cache_dir)
    if "@" in spec and spec != canonical:
        log.warning("model spec %s asks for other weights than the installed ones (%s): vectors made with "
                    "the old weights should be rebuilt", spec, canonical)
    return Encoder(canonical, model, tokenizer, preprocess, model.dim, _described_batches(name))


def _adapted(folder: Path, cache_dir: Path) -> Encoder:
    """A home's adapted model (indexer.model.adapted): its registered base with the heads trained on the home's
    catalog. Named by its folder, which never changes once written."""
    from indexer.model.lite import Blend, build_lite

    info = read_model_file(folder)
    model, tokenizer, preprocess, _ = build_lite(info["base"], cache_dir, heads_path=folder / info["heads"],
                                                 blend=Blend(**info["blend"]) if "blend" in info else None)
    return Encoder(spec_of(folder), model, tokenizer, preprocess, model.dim, _described_batches(info["base"]))


def _described_batches(name: str) -> dict[str, Batches]:
    """The batch sizes a registered model's config describes (its "batches"), defaults for what it leaves out."""
    return Batches.by_runtime(load_model_config(name).get("batches", {}))


def _from_open_clip(name: str, model: torch.nn.Module, preprocess: Callable, tokenizer_name: str,
                    arch: str | None = None) -> Encoder:
    import open_clip

    dim = model.text_projection.shape[1] if getattr(model, "text_projection", None) is not None else None
    dim = dim or int(model.encode_text(open_clip.get_tokenizer(tokenizer_name)(["x"])).shape[-1])
    return Encoder(name, model, open_clip.get_tokenizer(tokenizer_name), preprocess, dim,
                   ARCH_BATCHES.get(arch or ""))


def _open_clip_local_dir(path: str) -> Encoder:
    import open_clip

    folder = Path(path).expanduser().resolve()
    if not (folder / "open_clip_config.json").is_file():
        raise WeightsUnavailable(f"{folder} has no open_clip_config.json.",
                                 hint="A model folder needs open_clip_config.json and its weights file.")
    from indexer.model.lite import quiet_loading

    try:
        with quiet_loading():
            model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    except Exception as exc:  # open_clip raises many kinds for a bad folder
        raise WeightsUnavailable(f"could not load the model folder {folder}: {_first_line(exc)}.") from exc
    return _from_open_clip(f"local-dir:{folder}", model, preprocess, f"local-dir:{folder}")


def _open_clip_arch(arch: str, source: str, cache_dir: Path) -> Encoder:
    import open_clip

    if arch not in open_clip.list_models():
        raise WeightsUnavailable(f"'{arch}' is not an open_clip architecture.", hint=_spec_help())
    path = Path(source).expanduser()
    is_tag = source in open_clip.list_pretrained_tags_by_model(arch)
    if not is_tag:
        if not path.is_file():
            tags = open_clip.list_pretrained_tags_by_model(arch)
            raise WeightsUnavailable(f"checkpoint '{source}' for {arch} is neither a file nor a known pretrained tag "
                                     f"(e.g. {', '.join(tags[:3]) or 'none'}).")
        path = path.resolve()
    elif not _hub_reachable():
        raise WeightsUnavailable(f"model '{arch}:{source}' needs weights from the model hub, which this machine "
                                 f"cannot reach; {OFFLINE_ALTERNATIVES}")
    from indexer.model.lite import quiet_loading

    try:
        with quiet_loading():
            model, _, preprocess = open_clip.create_model_and_transforms(
                arch, pretrained=source if is_tag else str(path), cache_dir=str(cache_dir / "hub") if is_tag else None)
    except Exception as exc:  # download errors, bad checkpoints: one line for the user
        what = "download the weights of" if is_tag else f"load the checkpoint {path} into"
        raise WeightsUnavailable(f"could not {what} {arch}: {_first_line(exc)}; {OFFLINE_ALTERNATIVES}") from exc
    return _from_open_clip(f"{arch}:{source if is_tag else path}", model, preprocess, arch, arch)


def _hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP probe of the hub, bounded even when name resolution hangs (huggingface_hub would retry)."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    result: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection(HUB_HOST, timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
