"""Questions and captions (search.ask) on the real test index (300 Myntra products + the grocery catalog): the CLI,
the HTTP routes and their bad input, and the question parser on its own."""
from __future__ import annotations

import io
import json

import pytest

from indexer_data import GROCERY, MYNTRA, grocery_photo_queries, shoplens
from test_api_search import assert_error, png_header, upload

RED_TSHIRT = "10602"   # Myntra: "Red" Tshirts for Men, printed, photo in images_hr
WATCH = "10389"        # Myntra: a watch; the catalog gives no material


def ask(home, product_id: str, question: str, *flags: str) -> dict:
    return json.loads(shoplens(home, "ask", product_id, question, "--json", *flags).stdout)


def test_colour_is_answered_from_the_facts_and_with_image_only_from_the_photo(real_home):
    facts = ask(real_home, RED_TSHIRT, "what colour is it?")
    assert facts["source"] == "facts" and facts["value"] == "Red" and facts["confidence"] == 1.0
    photo = ask(real_home, RED_TSHIRT, "what colour is it?", "--image-only")
    assert photo["source"] == "image" and photo["value"] == "Red" and 0.35 <= photo["confidence"] <= 1.0
    assert "photo" in photo["answer"] and "Red" in photo["answer"]
    yes_no = ask(real_home, RED_TSHIRT, "is it blue?", "--image-only")
    assert yes_no["answer"].startswith("No") and yes_no["value"] == "Red"


def test_image_only_hides_every_fact(real_home):
    """With the facts hidden nothing answers from them: the brand and material of a T-shirt are not stated
    (nothing is printed on it), however the catalog gives them."""
    assert ask(real_home, RED_TSHIRT, "what brand is it?")["source"] == "facts"
    for question in ("what brand is it?", "what is it made of?", "how much does it cost?"):
        answer = ask(real_home, RED_TSHIRT, question, "--image-only")
        assert answer["source"] == "none" and answer["confidence"] == 0.0, (question, answer)


def test_an_unanswerable_question_is_not_stated_never_guessed(real_home):
    answer = ask(real_home, WATCH, "what is it made of?")
    assert answer["source"] == "none" and "doesn't say" in answer["answer"] and answer["value"] is None
    claim = ask(real_home, WATCH, "is it organic?")
    assert claim["source"] == "none" and "whether it is organic" in claim["answer"]


def test_printed_text_answers_what_the_label_says(real_home):
    """A grocery carton's label, as read at indexing (image_texts): the answer quotes it, facts or not."""
    from indexer.config import load_settings
    from search.engine import SearchEngine

    engine = SearchEngine(load_settings(home=real_home))
    printed = [p for p in engine.state().table.products if engine.product(p.id)["printed_text"]]
    assert printed
    product = printed[0]
    answer = engine.ask(product.id, "what does the label say?", image_only=True)
    assert answer.source == "printed_text" and 0 < answer.confidence <= 1
    assert engine.product(product.id)["printed_text"][0] in answer.answer


def test_a_caption_names_the_product_type(real_home):
    caption = shoplens(real_home, "caption", RED_TSHIRT).stdout.strip()
    assert "Tshirts" in caption and "Red" in caption
    from_file = json.loads(shoplens(real_home, "caption", str(MYNTRA / "images_hr" / f"{RED_TSHIRT}.jpg"),
                                    "--json").stdout)
    assert "Tshirts" in from_file["caption"] and from_file["reads"]["type"]["value"] == "Tshirts"


def test_the_cli_refuses_bad_questions_in_one_line(real_home):
    for question in ("", "   ", "x" * 600, "?!? 123"):
        result = shoplens(real_home, "ask", RED_TSHIRT, question, ok=False)
        assert result.exit_code != 0 and "512" in result.output and "Traceback" not in result.output
    unknown = shoplens(real_home, "ask", "no-such-product", "what colour is it?", ok=False)
    assert unknown.exit_code != 0 and "no product" in unknown.output


def test_the_api_answers_and_names_its_source(client):
    r = client.get(f"/api/v1/products/{RED_TSHIRT}/ask", query_string={"q": "what colour is it?"})
    assert r.status_code == 200 and r.get_json()["source"] == "facts"
    r = client.get(f"/api/v1/products/{RED_TSHIRT}/ask", query_string={"q": "what colour is it?", "image_only": "true"})
    body = r.get_json()
    assert body["source"] == "image" and body["value"] == "Red"
    foreign = client.get(f"/api/v1/products/{RED_TSHIRT}/ask", query_string={"q": "это какого цвета?"}).get_json()
    assert foreign["source"] == "none" and "can't read" in foreign["answer"]


@pytest.mark.parametrize("q", ["", "   ", "x" * 513, "\x00\x01\x02", "?? 42 !!"])
def test_the_api_refuses_empty_giant_or_non_text_questions_with_the_limit(client, q):
    body = assert_error(client.get(f"/api/v1/products/{RED_TSHIRT}/ask", query_string={"q": q}), 400)
    assert "512" in body["error"]["message"]


def test_the_api_404s_an_unknown_product(client):
    assert_error(client.get("/api/v1/products/no-such-product/ask", query_string={"q": "what colour?"}), 404)


def test_a_photo_of_anything_is_answered_with_its_closest_products(client):
    row = grocery_photo_queries()[0]
    photo = (GROCERY / row["query_image_path"]).read_bytes()
    r = client.post("/api/v1/ask", data={"q": "what is this?", "image": (io.BytesIO(photo), "p.jpg")},
                    content_type="multipart/form-data")
    body = r.get_json()
    assert r.status_code == 200, body
    assert body["topic"] == "type" and body["closest"] and "Closest in the catalog" in body["answer"]
    caption = client.post("/api/v1/caption", data={"image": (io.BytesIO(photo), "p.jpg")},
                          content_type="multipart/form-data")
    assert caption.status_code == 200 and caption.get_json()["caption"]


@pytest.mark.parametrize("route", ["/api/v1/ask", "/api/v1/caption"])
def test_photo_routes_check_uploads_as_search_does(client, route):
    def post(data: bytes, name: str = "x.png"):
        return upload(client, data, name, path=route, form={"q": "what is this?"})

    assert_error(post(png_header(60_000, 60_000)), 400, "bad_image")
    assert_error(post(b"BM" + b"\x00" * 100, "x.bmp"), 415, "bad_image")
    assert_error(post(b"\xff\xd8\xff\xe0" + b"\x00" * 50, "x.jpg"), 400)
    assert_error(post(b"", "x.jpg"), 400)


@pytest.mark.parametrize("question, topic, asked", [
    ("what colour is the sole?", "colour", None), ("is it sleeveless?", "sleeve", "Sleeveless"),
    ("is it red?", "colour", "Red"), ("is it organic?", "ingredients", "organic"),
    ("what does the label say?", "label", None), ("what is it made of?", "material", None),
    ("who is it for?", "gender", None), ("what is this?", "type", None), ("is it a shirt?", "type", "Shirts"),
    ("what sleeve length does it have?", "sleeve", None), ("what's the price?", "price", None),
    ("tell me a joke", None, None)])
def test_questions_are_parsed_to_their_topic(question, topic, asked):
    from search.ask.questions import parse_question

    vocabulary = {"colour": ["Red", "Navy Blue"], "type": ["Shirts", "Tshirts"], "sleeve": ["Sleeveless"],
                  "gender": ["Men", "Women"]}
    parsed = parse_question(question, vocabulary)
    assert (parsed.topic, parsed.asked) == (topic, asked)


def test_eval_vqa_reports_accuracy_per_question_type_with_the_majority_baseline(real_home, tmp_path):
    from indexer_data import GROCERY_MAP

    out = tmp_path / "vqa.json"
    result = shoplens(real_home, "eval", "vqa", "--catalog", str(GROCERY / "products.csv"),
                      *[a for m in GROCERY_MAP for a in ("--map", m)], "--questions", "type,colour", "--n", "30",
                      "--reference", "30", "--json", str(out))
    assert "| type | 30 |" in result.stdout
    body = json.loads(out.read_text())
    assert body["products"] == 30 and body["reference_products"] == 30 and body["heldout"]["checked"]
    kind = body["questions"]["type"]
    assert set(kind) >= {"accuracy", "majority_baseline", "coverage", "examples"}
    assert kind["accuracy"] > kind["majority_baseline"]  # the photos say more than the commonest type
    assert "colour" not in body["questions"]  # the grocery catalog states no colour: no colour question is built
    bad = shoplens(real_home, "eval", "vqa", "--catalog", str(GROCERY / "products.csv"), "--questions", "smell",
                   ok=False)
    assert bad.exit_code != 0 and "unknown question type" in bad.output
