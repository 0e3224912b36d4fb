"""The ONNX Runtime fast path (indexer.model.runtime): the same vectors and rankings as eager PyTorch on real
Myntra products, the export reused across starts and rebuilt when the weights change, and an eager fallback that
says why when a model cannot be exported faithfully."""
from __future__ import annotations

import csv
import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from indexer.config import load_settings
from indexer.model.encoder import DEFAULT_BATCHES, Batches, Encoder, _build, load_encoder
from indexer.model.registry import load_model_config
from indexer.model import runtime
from indexer_data import MYNTRA


@pytest.fixture(scope="module")
def products() -> tuple[list[str], list[Image.Image]]:
    with (MYNTRA / "products.csv").open(encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["image_hr"]][:96]
    return [r["title"] for r in rows], [Image.open(MYNTRA / r["image_hr"]).convert("RGB") for r in rows]


@pytest.fixture(scope="module")
def encoders(tmp_path_factory) -> tuple[Encoder, Encoder]:
    cache = load_settings().model_cache_dir
    eager = load_encoder("shoplens-lite", cache_dir=cache, runtime="eager")
    fast = load_encoder("shoplens-lite", cache_dir=cache, runtime="onnx")
    return eager, fast


def test_fast_path_gives_the_eager_vectors_and_rankings(encoders, products):
    eager, fast = encoders
    assert (eager.runtime, fast.runtime) == ("eager", "onnx")
    titles, images = products
    texts_e, texts_f = eager.encode_texts(titles), fast.encode_texts(titles)
    images_e, images_f = eager.encode_images(images), fast.encode_images(images)
    assert (texts_e * texts_f).sum(1).min() >= 0.999
    assert (images_e * images_f).sum(1).min() >= 0.999
    # The same top-10 for every title → image query over these products.
    top_e = np.argsort(-(texts_e @ images_e.T), axis=1)[:, :10]
    top_f = np.argsort(-(texts_f @ images_f.T), axis=1)[:, :10]
    assert (top_e == top_f).mean() >= 0.99
    assert fast.encode_texts([]).shape == (0, fast.dim)  # an empty batch stays a (0, dim) array


def test_batch_sizes_come_from_the_model_description_per_runtime(encoders, products):
    eager, fast = encoders
    described = load_model_config("shoplens-lite")["batches"]
    assert fast.batches == Batches(**described["onnx"]) and eager.batches == Batches(**described["eager"])
    assert Batches.by_runtime({"onnx": {"image": 2, "text": 3}}) == {**DEFAULT_BATCHES, "onnx": Batches(2, 3)}
    titles, _ = products
    whole = fast.encode_texts(titles[:10])
    fast.batches = Batches(image=1, text=3)  # how many go through one forward pass does not change the vectors
    try:
        assert (whole * fast.encode_texts(titles[:10])).sum(1).min() >= 0.999
    finally:
        fast.batches = Batches(**described["onnx"])


def test_export_is_reused_and_rebuilt_when_weights_change(tmp_path, monkeypatch):
    model = _build("shoplens-lite", load_settings().model_cache_dir)
    probe = model.tokenizer(["a long red cotton summer dress", "black watch", "jeans"])
    size = tuple(model.preprocess(Image.new("RGB", (64, 64))).shape)
    exports = []
    real_export = runtime._export
    monkeypatch.setattr(runtime, "_export", lambda *a: (exports.append(a[1]), real_export(*a)))
    first = runtime.load_towers(model.model, tmp_path, size, probe)
    again = runtime.load_towers(model.model, tmp_path, size, probe)
    assert len(exports) == 1 and first.folder == again.folder  # the second start reuses the file
    with torch.no_grad():
        next(model.model.clip.text.proj.parameters()).mul_(1.01)  # new weights: a new fingerprint, a new export
    changed = runtime.load_towers(model.model, tmp_path, size, probe)
    assert len(exports) == 2 and changed.folder != first.folder
    assert not model.model.training  # exporting left the model in eval mode


class _Untraceable(torch.nn.Module):
    """A model whose image tower leaves the graph through numpy: a trace would freeze its output to a constant."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(3, 4)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return self.proj(torch.from_numpy(images.numpy().mean(axis=(2, 3))))

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.proj(tokens[:, :3].float())


def test_an_unfaithful_export_falls_back_to_eager_and_says_why(tmp_path, caplog, monkeypatch):
    enc = Encoder("untraceable", _Untraceable(), lambda texts: torch.ones(len(texts), 5, dtype=torch.long),
                  lambda im: torch.zeros(3, 8, 8), dim=4)
    with caplog.at_level(logging.WARNING, logger="indexer.model.encoder"):
        enc.use_runtime("onnx", tmp_path)
    assert enc.runtime == "eager"
    assert "runs on eager PyTorch" in caplog.text and "the trace lost it" in caplog.text
    images = torch.rand(2, 3, 8, 8)
    assert np.allclose(enc.encode_image_tensors(images), enc.encode_image_tensors(images))
    caplog.clear()
    again = Encoder("untraceable", enc.model, enc.tokenizer, enc.preprocess, dim=4)
    monkeypatch.setattr(runtime, "_export", lambda *a: pytest.fail("exported the refused weights again"))
    with caplog.at_level(logging.WARNING, logger="indexer.model.encoder"):
        again.use_runtime("onnx", tmp_path)  # the same weights: refused at once, from the recorded reason
    assert again.runtime == "eager" and "the trace lost it" in caplog.text


class _Attention(torch.nn.Module):
    """Both towers through nn.MultiheadAttention, as open_clip's ViTs are: without grad its fused fast path runs,
    an operator ONNX cannot spell."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(10, 16)
        self.patch = torch.nn.Linear(12, 16)
        self.attn = torch.nn.MultiheadAttention(16, 2, batch_first=True)

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x, x, x, need_weights=False)[0].mean(1)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return self._pool(self.patch(images.flatten(2).transpose(1, 2).reshape(images.shape[0], -1, 12)))

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return self._pool(self.embed(tokens))


def test_a_model_with_fused_attention_exports_and_matches_eager(tmp_path):
    enc = Encoder("attention", _Attention(), lambda texts: torch.arange(len(texts) * 6).reshape(-1, 6) % 10,
                  lambda im: torch.rand(3, 8, 8), dim=16)
    enc.use_runtime("onnx", tmp_path)
    assert enc.runtime == "onnx"
    assert torch.backends.mha.get_fastpath_enabled()  # switched off for the export only


class _Dense(torch.nn.Module):
    """Both towers as stacks of wide matrix products: the shape of work int8 speeds up."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(10, 192)
        self.image_layers = torch.nn.Sequential(torch.nn.Linear(192, 512), torch.nn.GELU(), torch.nn.Linear(512, 64))
        self.text_layers = torch.nn.Sequential(torch.nn.Linear(192, 512), torch.nn.GELU(), torch.nn.Linear(512, 64))

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return self.image_layers(images.flatten(1))

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.text_layers(self.embed(tokens).mean(1))


def _dense_encoder() -> Encoder:
    return Encoder("dense", _Dense(), lambda texts: torch.tensor([[len(t) % 10, 1, 2, 3] for t in texts]),
                   lambda im: torch.rand(3, 8, 8), dim=64)


def test_auto_keeps_an_int8_tower_that_is_faithful_and_faster_and_decides_once(tmp_path, monkeypatch):
    # How much faster int8 is depends on the CPU; the decision is tested here with the measured speed-up fixed.
    monkeypatch.setattr(runtime, "_speedup", lambda *a: 2.0)
    eager, fast = _dense_encoder(), _dense_encoder()
    fast.use_runtime("auto", tmp_path)
    assert (fast.runtime, fast.precision) == ("onnx", {"image": "int8", "text": "int8"})
    images = torch.rand(16, 3, 8, 8) * 2 - 1
    texts = [f"title {'x' * i}" for i in range(16)]
    assert (eager.encode_image_tensors(images) * fast.encode_image_tensors(images)).sum(1).min() >= 0.999
    assert (eager.encode_texts(texts) * fast.encode_texts(texts)).sum(1).min() >= 0.999
    folder = fast.towers.folder
    assert json.loads((folder / "image.int8.json").read_text())["use"] is True
    monkeypatch.setattr(runtime, "_quantize", lambda *a: pytest.fail("quantised the same weights again"))
    again = _dense_encoder()
    again.use_runtime("auto", tmp_path)  # the second start reads the decision and the twins
    assert again.precision == {"image": "int8", "text": "int8"}
    plain = _dense_encoder()
    plain.use_runtime("onnx", tmp_path)  # `onnx` is the fp32 export only
    assert plain.precision == {"image": "fp32", "text": "fp32"}


def test_a_later_start_loads_only_the_twin_it_serves_and_checks_it(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(runtime, "_speedup", lambda *a: 2.0)
    _dense_encoder().use_runtime("auto", tmp_path)  # decides: both towers int8
    loaded = []
    real_runner = runtime._runner
    monkeypatch.setattr(runtime, "_runner",
                        lambda path, threads: (loaded.append(path.name), real_runner(path, threads))[1])
    again = _dense_encoder()
    again.use_runtime("auto", tmp_path)
    assert again.precision == {"image": "int8", "text": "int8"}
    assert sorted(loaded) == ["image.int8.onnx", "text.int8.onnx"]  # no fp32 session built beside them
    # A twin that no longer loads or matches here (a cache copied from another machine): fp32 serves, and says so.
    (again.towers.folder / "image.int8.onnx").write_bytes(b"not a model")
    loaded.clear()
    third = _dense_encoder()
    with caplog.at_level(logging.WARNING, logger="indexer.model.runtime"):
        third.use_runtime("auto", tmp_path)
    assert (third.runtime, third.precision) == ("onnx", {"image": "fp32", "text": "int8"})
    assert "image tower's int8 twin" in caplog.text and "fp32 serves" in caplog.text
    images = torch.rand(4, 3, 8, 8) * 2 - 1
    assert (_dense_encoder().encode_image_tensors(images) * third.encode_image_tensors(images)).sum(1).min() >= 0.999


def test_an_int8_tower_that_is_not_faster_stays_fp32_and_its_twin_is_deleted(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(runtime, "_speedup", lambda *a: 1.1)
    enc = _dense_encoder()
    with caplog.at_level(logging.INFO, logger="indexer.model.runtime"):
        enc.use_runtime("auto", tmp_path)
    assert enc.precision == {"image": "fp32", "text": "fp32"}
    assert "1.10x the fp32 export's speed (needs 1.25)" in caplog.text
    assert not list(enc.towers.folder.glob("*.int8.onnx")) and len(list(enc.towers.folder.glob("*.int8.json"))) == 2


def test_the_default_model_keeps_its_text_tower_fp32_because_int8_changes_its_vectors(tmp_path):
    # shoplens-lite's MiniLM text tower loses too much to int8 (min cosine ~0.98 on real titles): auto must see it.
    enc = _build("shoplens-lite", load_settings().model_cache_dir)
    enc.use_runtime("auto", tmp_path)
    assert enc.runtime == "onnx" and enc.precision["text"] == "fp32"
    decision = json.loads((enc.towers.folder / "text.int8.json").read_text())
    assert decision["use"] is False and decision["min_cosine"] < 0.999 and "min cosine" in decision["reason"]


@pytest.mark.slow
def test_int8_vit_towers_give_the_fp32_vectors_and_rankings_on_real_products(tmp_path, products):
    # open_clip's ViT-B-32, the architecture issue 18 compares with clip-retrieval; no pretrained ViT weights
    # install offline, so a seeded random initialisation stands in: the check is int8 against fp32, not quality.
    import open_clip

    torch.manual_seed(0)
    checkpoint = tmp_path / "vit-b-32-seed0.pt"
    torch.save(open_clip.create_model("ViT-B-32").state_dict(), checkpoint)
    spec = f"ViT-B-32:{checkpoint}"
    fp32 = load_encoder(spec, cache_dir=tmp_path, runtime="onnx")
    int8 = _build(spec, tmp_path)
    int8.use_runtime("auto", tmp_path)
    assert int8.precision == {"image": "int8", "text": "int8"}  # 2-3x faster on this machine's VNNI/AMX
    titles, images = products
    texts_a, texts_b = fp32.encode_texts(titles), int8.encode_texts(titles)
    images_a, images_b = fp32.encode_images(images), int8.encode_images(images)
    assert (texts_a * texts_b).sum(1).min() >= 0.999 and (images_a * images_b).sum(1).min() >= 0.999
    # Similar products (photo → photos) and title → titles keep their top-10 (measured 0.985 and 0.973 shared).
    # Title → photo is not compared: a random model's cross-modal scores differ by noise (std 0.025), so any
    # change reorders them; a trained model's do not.
    for queries_a, queries_b, items_a, items_b in ((images_a, images_b, images_a, images_b),
                                                   (texts_a, texts_b, texts_a, texts_b)):
        top_a = np.argsort(-(queries_a @ items_a.T), axis=1)[:, :10]
        top_b = np.argsort(-(queries_b @ items_b.T), axis=1)[:, :10]
        assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top_a, top_b)]) >= 0.95
