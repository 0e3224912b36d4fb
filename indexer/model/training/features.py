"""Frozen-tower features, computed once and cached on disk.

Locked-image tuning only trains the heads, so each product's image features (EfficientNet-Lite0: pooled head
features and aux features, see `indexer/model/lite.py`) and text features (MiniLM, 384-d) are computed once. Image
extraction is the slow part (~25-36 images/s on two cores), so it is written in shards and resumes where it stopped.
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from indexer.model.lite import LiteCLIP

log = logging.getLogger(__name__)
SHARD = 512


@lru_cache(maxsize=8)
def _archive(path: Path) -> zipfile.ZipFile:
    return zipfile.ZipFile(path)


def open_image(ref: tuple[Path, str | None]) -> Image.Image:
    """An image from a file or from a member of a zip archive, as RGB."""
    path, member = ref
    if member is None:
        with Image.open(path) as im:
            return im.convert("RGB")
    with _archive(path).open(member) as f, Image.open(f) as im:
        return im.convert("RGB")


class _Images(Dataset):
    def __init__(self, refs: list, preprocess: Callable, load: Callable[[object], Image.Image]) -> None:
        self.refs, self.preprocess, self.load = refs, preprocess, load

    def __len__(self) -> int:
        return len(self.refs)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.preprocess(self.load(self.refs[i]))


def _key(*parts: object) -> str:
    return hashlib.sha256("\n".join(map(str, parts)).encode()).hexdigest()[:16]


def ref_name(ref: tuple[Path, str | None]) -> str:
    path, member = ref
    return f"{path}#{member}" if member is not None else str(path)


class FeatureStore:
    """Features by key (an image reference or a text), in shard files of one folder per tower setting.

    Keyed per item rather than per list, so any subset (a training catalog, a held-out split, a quality check)
    reuses every feature already computed, and an interrupted extraction resumes at the last shard.
    """

    def __init__(self, folder: Path, dim: int) -> None:
        self.folder, self.dim = folder, dim
        folder.mkdir(parents=True, exist_ok=True)
        self.index: dict[str, tuple[Path, int]] = {}
        self._loaded: dict[Path, np.ndarray] = {}
        for shard in sorted(folder.glob("*.npz")):
            with np.load(shard) as data:
                for row, name in enumerate(data["refs"].tolist()):
                    self.index[name] = (shard, row)

    def get(self, names: list[str]) -> np.ndarray:
        out = []
        for name in names:
            shard, row = self.index[name]
            if shard not in self._loaded:
                with np.load(shard) as data:
                    self._loaded[shard] = data["feats"]
            out.append(self._loaded[shard][row])
        return np.stack(out) if out else np.zeros((0, self.dim), np.float32)

    def add(self, names: list[str], feats: np.ndarray) -> None:
        path = self.folder / f"{time.time_ns()}-{os.getpid()}.npz"
        tmp = path.with_name(f".{path.stem}.tmp.npz")
        np.savez(tmp, refs=np.array(names), feats=feats.astype(np.float32))
        os.replace(tmp, path)
        self._loaded[path] = feats.astype(np.float32)
        self.index.update({n: (path, i) for i, n in enumerate(names)})


def image_features(model: LiteCLIP, preprocess, refs: list, cache_dir: Path, *, names: list[str] | None = None,
                   load: Callable[[object], Image.Image] = open_image, batch_size: int = 64, workers: int = 1,
                   desc: str = "image features") -> np.ndarray:
    """(n, model.feature_dim) float32 image tower features of `refs`; only the ones not cached yet are computed.

    `refs` are (path, member) pairs read by `open_image` and cached under their path, unless `load` reads them
    otherwise and `names` gives the cache keys (e.g. the image's sha256, and a view number for augmented views)."""
    key = _key(model.clip.visual.preprocess_cfg, model.aux_groups)
    store = FeatureStore(cache_dir / "features" / f"img-{key}", model.feature_dim)
    names = names if names is not None else [ref_name(r) for r in refs]
    todo, seen = [], set()
    for i, name in enumerate(names):
        if name not in store.index and name not in seen:
            seen.add(name)
            todo.append(i)
    with tqdm(total=len(refs), initial=len(refs) - len(todo), desc=desc, unit="img") as bar:
        for start in range(0, len(todo), SHARD):
            chunk = todo[start:start + SHARD]
            loader = DataLoader(_Images([refs[i] for i in chunk], preprocess, load), batch_size=batch_size,
                                num_workers=workers)
            out = []
            with torch.inference_mode():
                for batch in loader:
                    out.append(model.image_features(batch).numpy())
                    bar.update(len(batch))
            store.add([names[i] for i in chunk], np.concatenate(out))
    return store.get(names)


def text_features(model: LiteCLIP, tokenizer, texts: list[str], cache_dir: Path, *, batch_size: int = 128,
                  desc: str = "text features") -> np.ndarray:
    """(n, 384) float32 mean-pooled MiniLM features of `texts`; only the ones not cached yet are computed."""
    key = _key(model.clip.text.config.name_or_path, type(model.clip.text.pooler).__name__)
    store = FeatureStore(cache_dir / "features" / f"txt-{key}", 384)
    todo = sorted(dict.fromkeys(t for t in texts if t not in store.index), key=len)  # similar lengths: less padding
    with tqdm(total=len(todo), desc=desc, unit="text") as bar, torch.inference_mode():
        for start in range(0, len(todo), SHARD * 4):
            chunk = todo[start:start + SHARD * 4]
            out = []
            for i in range(0, len(chunk), batch_size):
                out.append(model.text_features(model.trim_tokens(tokenizer(chunk[i:i + batch_size]))).numpy())
                bar.update(len(chunk[i:i + batch_size]))
            store.add(chunk, np.concatenate(out))
    return store.get(list(texts))


def embed_features(model: LiteCLIP, kind: str, feats: np.ndarray) -> np.ndarray:
    """L2-normalised model vectors (every block, as search ranks) of cached `kind` ("image" or "text") tower
    features: how training scores a model without running the towers again."""
    with torch.inference_mode():
        t = torch.from_numpy(np.ascontiguousarray(feats))
        out = model.embed_image_features(t) if kind == "image" else model.embed_text_features(t)
        return torch.nn.functional.normalize(out, dim=-1).numpy()
