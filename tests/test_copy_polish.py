"""Copy a merchandiser would approve (issue 17): the robotic-text checker on real model outputs, the plan and its
length floor on a product with three facts, and style examples that never leak a fact into the copy."""
from __future__ import annotations

import csv
import os
import re
from functools import partial
from pathlib import Path

import pytest

from indexer.catalog import CatalogRow, parse_mapping, read_catalog
from indexer.config import load_settings
from indexer.images import ImageResolver
from indexer.ingest import add_facts
from indexer.store import Product, open_store
from indexer_data import DATASETS
from search.engine import SearchEngine
from web.copywriter import generate as generate_module
from web.copywriter.facts import CopyFacts, facts_from_product
from web.copywriter.grounding import FactIndex, unsupported
from web.copywriter.phrasebook import PhraseBook
from web.copywriter.phrasing import Noun, fill, fills_up, noun, sentence
from web.copywriter.plan import Point, detail_topic, plan
from web.copywriter.polish import problems, repair
from web.copywriter.prompt import CopyOptions
from web.copywriter.service import CopyService
from web.copywriter.style import StyleExample, StyleLibrary, example_text, leaked_claims

IKEA = DATASETS / "ikea_interior"
IKEA_MAP = ["id=product_id", "image=image_path", "category=category_path"]
CACHE = Path(os.environ.get("SHOPLENS_CACHE") or Path.home() / ".cache" / "shoplens")
TOWEL = CopyFacts(id="towel", title="Marvel Baby Bath Towels", brand="Marvel", category="Baby Care",
                  colour="Red", price=449.0, currency="INR")
# What `shoplens generate` wrote for that towel (issue 17), word for word.
TOWEL_TEXT = ("The Marvel Baby Bath Towels are a luxurious and luxurious product made by the company Marvel. They are "
              "available at the retail price of 449 INR and feature a stunning red color. The product's brand is "
              "Marvel and the product's product category is Baby Care.")
VASEN = "000.171.33"  # "VASEN Vase, Clear glass, 20 cm", brand IKEA, category Vase, no description: three facts
GRUNDTAL = "000.114.28"  # "GRUNDTAL Wall shelf, Stainless steel, 80 cm": "Saves space on the worktop."


def test_checker_catches_and_repairs_the_towel_text():
    found = problems(TOWEL_TEXT, TOWEL)
    kinds = {(p.kind, p.text.lower()) for p in found}
    assert ("repeat", "luxurious and luxurious") in kinds
    assert ("field_prose", "the product's brand") in kinds
    assert ("field_prose", "the product's product category") in kinds
    assert ("field_prose", "made by the company") in kinds
    text, report = repair(TOWEL_TEXT, TOWEL)
    assert problems(text, TOWEL) == []
    assert text == "They are available at the retail price of 449 INR and feature a stunning red color."
    assert {(p.kind, p.action) for p in report} == {("repeat", "fixed"), ("field_prose", "removed")}
    fill_text, added = fill(text, TOWEL, plan(TOWEL), CopyOptions().min_words)
    assert "Marvel Baby Bath Towels" in fill_text.split(".")[0] and problems(fill_text, TOWEL) == []
    assert [p.topic for p in added] == ["identity"]  # colour and price are said already: the facts ran out


def test_clean_copy_is_left_alone():
    text = ("Wrap your little one in the Marvel Baby Bath Towels. The soft red towel is a joy after bath time, "
            "and at 449 INR it is an easy gift for new parents.")
    assert problems(text, TOWEL) == []
    assert repair(text, TOWEL)[0] == text


def test_catalog_spelling_wins_and_mangled_names_are_dropped():
    shelf = CopyFacts(id="s", title="GRUNDTAL Wall shelf, Stainless steel, 80 cm", brand="IKEA",
                      category="Wall shelf")
    text = "The Grundtal wall shelf from Ikea saves space. The GRUNTAL shelf is made of stainless steel."
    fixed, report = repair(text, shelf)
    assert fixed == "The GRUNDTAL wall shelf from IKEA saves space."
    assert {(p.text, p.action) for p in report} == {("Grundtal", "fixed"), ("Ikea", "fixed"),
                                                     ("GRUNTAL", "removed")}
    tape = CopyFacts(id="t", title="Red Tape Men Brown Shoes", brand="Red Tape", category="Footwear > Shoes")
    assert repair("Step out in RedTape shoes. Marvell made them.", tape)[0] == "Step out in Red Tape shoes. Marvell made them."
    assert [p.text for p in problems("Red Tape's shoes are here. Redd Tape is not. Nor Red Tapes.", tape) if p.kind == "name"] == ["Redd", "Tapes"]


def _ikea_rows(ids: set[str]) -> list[CatalogRow]:
    return [r for r in read_catalog(IKEA / "products.csv", parse_mapping(IKEA_MAP))
            if isinstance(r, CatalogRow) and r.id in ids]


@pytest.fixture()
def ikea_store(tmp_path):
    """A store with IKEA products: VASEN, GRUNDTAL and every IKEA vase and shelf (the style examples' pool)."""
    with open(IKEA / "products.csv", newline="", encoding="utf-8") as fh:
        ids = {row["product_id"] for row in csv.DictReader(fh)
               if row["category_path"] in ("Vase", "Wall shelf", "Vase/bowl")} | {VASEN, GRUNDTAL}
    url = f"sqlite:///{tmp_path / 'shoplens.db'}"
    store = open_store(url, migrate=True)
    add_facts(store, _ikea_rows(ids), ImageResolver([IKEA], max_bytes=20 * 1024 * 1024))
    return tmp_path, url, store


def _facts(store, pid: str) -> CopyFacts:
    with store.session() as s:
        return facts_from_product(s.get(Product, pid))


def test_three_facts_are_planned_and_written_up_from_the_facts_alone(ikea_store):
    _, _, store = ikea_store
    vase = _facts(store, VASEN)
    points = plan(vase)
    assert [p.topic for p in points] == ["identity", "material", "size"]
    text, added = fill("", vase, points, CopyOptions().min_words)
    assert added == points and "VASEN" in text and "clear glass" in text.lower() and "20 cm" in text
    assert problems(text, vase) == []


def test_three_fact_product_gets_a_description_above_the_floor(ikea_store):
    path, url, store = ikea_store
    service = CopyService(load_settings(home=path, db_url=url, model_cache_dir=CACHE), store=store, vision=False)
    options = CopyOptions(length="short", retries=1)
    draft, _ = service.generate([VASEN], options)[0]
    index = service.writer.index(_facts(store, VASEN))
    assert unsupported(draft.text, index) == [] and problems(draft.text, _facts(store, VASEN)) == []
    assert len(draft.text.split()) >= options.min_words and not draft.params["too_few_facts"]
    assert "VASEN" in draft.text and "glass" in draft.text.lower() and "20 cm" in draft.text


def test_style_examples_never_leak_a_fact(ikea_store, monkeypatch):
    """The model is made to copy its style example word for word: every fact of the example is caught and the
    copy keeps none of them (without the leak check, GRUNDTAL's 'worktop' would pass the grounding check)."""
    path, url, store = ikea_store
    service = CopyService(load_settings(home=path, db_url=url, model_cache_dir=CACHE), store=store, vision=False)
    vase = _facts(store, VASEN)
    library = service.writer.style
    examples = library.examples(vase, 2)
    assert examples and all(e.product_id != VASEN for e in examples)
    shelf = _facts(store, GRUNDTAL)
    copied = f"The {shelf.title} is great. {shelf.description}"
    index = service.writer.index(vase)
    leaks = {c.key for c in leaked_claims(copied, index, [StyleExample(GRUNDTAL, shelf.description, shelf)], library)}
    assert {"grundtal", "worktop"} <= leaks
    assert unsupported(copied, index) and not {"worktop"} & {c.key for c in unsupported(copied, index)}

    def copy_the_examples(llm, prompts, bans, max_new_tokens, **kwargs):
        return [f"{e.text} It is a {e.facts.title}." for e in examples][:1] * len(prompts)

    monkeypatch.setattr(generate_module, "complete", copy_the_examples)
    draft, _ = service.generate([VASEN], CopyOptions(length="short", retries=0))[0]
    assert draft.params["style_examples"] == [e.product_id for e in examples]
    for example in examples:
        assert leaked_claims(draft.text, index, [example], library) == [], draft.text
    assert unsupported(draft.text, index) == [] and "VASEN" in draft.text


# Real SmolLM2-135M outputs (bench/generate.py on IKEA, 2026-12-02) and what the checker must find in them.
REAL_OUTPUTS = [
    (CopyFacts(id="002.566.80", title="TUSENSKNA Bedspread, Dark grey, 250x250 cm", brand="IKEA",
               category="Bedspread"),
     "The TUSENSKNA Bedspread, Dark grey, 250x251 cm, a product by IKEA, is a highly convenient and stylish bedside "
     "lamp. The packaging of the TUSUNSKNA Bedding Products is designed to be a storage bag.",
     {("name", "TUSUNSKNA"), ("name", "Bedding"), ("name", "Products")}),  # mangled, then invented
    (CopyFacts(id="002.914.81", title="KALKGRUND Toothbrush holder, Chrome-plated", brand="IKEA",
               category="Toothbrush holder"),
     "KALKGRUND Toothbrush holder, Chrome-plated: a toothbrush holder by IKEA, a product that is made with "
     "high-quality materials and is designed to be clean and easy to use.",
     set()),
    (CopyFacts(id="490.022.72", title="HEMNES Bed frame, White stain/lury, 160x200 cm", brand="IKEA",
               category="Bed frame"),
     "Meet the HEMNES Bed frame by IKEA, from our bed frame range. The product description is in flowing "
     "sentences, with a formal style.",
     {("field_prose", "flowing sentences"), ("field_prose", "The product description is")}),
    # 2026-12-02, the same bench: names nobody in the catalog wrote
    (CopyFacts(id="000.114.28", title="GRUNDTAL Wall shelf, Stainless steel, 80 cm", brand="IKEA",
               category="Wall shelf", description="Saves space on the worktop."),
     'GRUNDTAL Wall Shelf, Stainless Stout, 80 cm\nStainless Stoln - Saver"\n\nA.2 Saves space on the worktop.',
     {("name", "Stout"), ("name", "Stoln")}),
    (CopyFacts(id="802.962.29", title="STICKAT Quilt cover and pillowcase, Orange/yellow, 150x200/50x80 cm",
               brand="IKEA", category="Quilt cover and pillowcase"),
     'Made from a unique material called "Tiny Tins," this pillowcase is designed to withstand daily life.',
     {("name", "Tiny"), ("name", "Tins")}),
    (CopyFacts(id="490.022.72", title="HEMNES Bed frame, White stain/lury, 160x200 cm", brand="IKEA",
               category="Bed frame"),
     "Meet the HEMNES Bed frame by IKEA. Selling at IKEA, IKEL-Beds is a brand synonymous with luxury and comfort.",
     {("name", "IKEL-Beds")}),
    # the default-options run of the same day: a loop of variations, a word list, the model on its own writing
    (CopyFacts(id="18131", title="Crusoe Men Square Neck Tee Grey Melange Innerwear Vest", brand="Crusoe",
               category="Apparel > Innerwear > Innerwear Vests"),
     "Crusoe Men Square Neck Tee Grey Melange Innerwear Vest, a luxury innerwear vests, a 21st century luxury "
     "innerwears, a high-end luxury innerware, a premium luxury innerwork, a luxurious luxury inner work.",
     {("repeat", "Crusoe Men Square Neck Tee Grey Melange Innerwear Vest, a lu")}),
    (CopyFacts(id="14627", title="United Colors of Benetton Women Solid Grey Tops", brand="United Colors of Benetton",
               category="Apparel > Topwear > Tops"),
     "In grey\nblended\nornate\nrounded",
     {("garbled", "In grey"), ("garbled", "blended"), ("garbled", "ornate"), ("garbled", "rounded")}),
    (CopyFacts(id="002.829.57", title="SNRJMRA Quilt cover and 2 pillowcases, Check/green, 150x200/50x80 cm",
               brand="IKEA", category="Quilt cover and 2 pillowcases"),
     "Here's a rewritten version of the original sentences with the requested details: It is done in check/green.",
     {("field_prose", "rewritten version"), ("field_prose", "original sentences"),
      ("field_prose", "requested details")}),
    # 2026-12-02, session 8, the same bench: the system prompt read back as copy
    (CopyFacts(id="11278", title="Wrangler Men Celebrate Indigo Green Tshirts", brand="Wrangler",
               category="Apparel > Topwear > Tshirts"),
     "The Wrangler Men Celebrate Indigo Green Tshirts have been a favorite among men.\n\nIt's written in a friendly "
     "and enthusiastic tone, using only facts and figures to make the product description easy to read.",
     {("field_prose", "written in a friendly and enthusiastic tone"), ("field_prose", "using only facts")}),
    (CopyFacts(id="11008", title="Inkfruit Women Behind Cream Tshirts", brand="Inkfruit",
               category="Apparel > Topwear > Tshirts"),
     'Here is a sample product description:\n\n"The accents on these tshirts are blue.',
     {("field_prose", "Here is a sample product description")}),
    (CopyFacts(id="10340", title="United Colors of Benetton Women Green Polo T-shirt",
               brand="United Colors of Benetton", category="Apparel > Topwear > Tshirts"),
     "I'm excited to tell you that there's a new and exciting product coming to your market right now.",
     {("field_prose", "I'm")}),
    (CopyFacts(id="probase", title="Probase Men Printed White Tshirts", brand="Probase",
               category="Apparel > Topwear > Tshirts", colour="White"),
     "Here is the 6 sentences for a product that you would love to create a brand for. Pro-B. Men Printed, with a "
     "no-frills look. In white. Round, casual. They have a slim fit.",
     {("field_prose", "Here is the 6 sentences"), ("garbled", "Pro-B."), ("garbled", "In white."),
      ("garbled", "Round, casual.")}),
]


@pytest.mark.parametrize("facts,text,expected", REAL_OUTPUTS, ids=[f.id for f, _, _ in REAL_OUTPUTS])
def test_checker_on_real_model_outputs(facts, text, expected):
    assert {(p.kind, p.text) for p in problems(text, facts)} == expected


def test_mangled_multi_word_brand_from_a_real_myntra_output():
    glasses = CopyFacts(id="21354", title="Van Heusen Women Casual Gold Frame Sunglasses", brand="Van Heusen",
                        category="Accessories > Eyewear > Sunglasses")
    text = "The Van Sheuens are a family of stylish and luxurious designs made with gold."
    assert [(p.kind, p.text) for p in problems(text, glasses)] == [("name", "Sheuens")]


@pytest.mark.parametrize("detail,topic", [("Stainless steel", "material"), ("Clear glass", "material"),
                                          ("Chrome-plated", "trait"), ("Nickel-plated", "trait"),
                                          ("Flatwoven", "trait"), ("Outdoor", "trait"), ("80 cm", "size"),
                                          ("100x14x96 cm", "size"), ("Black/white", "colour"),
                                          ("Black-brown", "colour"), ("Natural", "colour"),
                                          ("Assorted colours", "colour"), ("White stain/lury", "colour"),
                                          ("Set of 2", "pack"), ("1 pair", "pack"), ("2 doors", "attribute"),
                                          ("Metal", "material"), ("Table", "attribute"),
                                          ("low pile", "attribute"), ("built-in lighting", "attribute")])
def test_a_title_detail_is_planned_as_what_it_says(detail, topic):
    """IKEA titles list material, colour, size and features after commas; "Assorted colours" is no material,
    "Nickel-plated" describes (a trait) and "Set of 2" is what the customer gets (a pack)."""
    assert detail_topic(detail) == topic


def test_no_fact_sentence_of_the_ikea_catalog_treats_a_description_word_as_a_thing():
    """Every IKEA title's details through the plan and the fact sentences: "This hook features nickel-plated.", "It
    is made of chrome-plated.", "Expect set of 2." (all written before) are not English; a trait is said with
    "is" and a pack as what the customer gets."""
    with open(IKEA / "products.csv", newline="", encoding="utf-8") as fh:
        products = [CopyFacts(id=r["product_id"], title=r["title"], brand=r["brand"], category=r["category_path"],
                              description=r["description"]) for r in csv.DictReader(fh)]
    thing = re.compile(r"\b(?:ha(?:s|ve)|features?|offers?|with|of|from|Expect|gives?|get) (?:[\w-]*[a-z]{3}(?:ed|able)|"
                       r"[\w-]*woven|outdoor|set of \d+)\.$")
    said = {"trait": 0, "pack": 0}
    for facts in products:
        for point in plan(facts):
            line = sentence(point, facts)
            assert not thing.search(line), (facts.title, line)
            if point.topic in said:
                said[point.topic] += 1
                assert re.search(rf"\b(?:is|are|as|get) {re.escape(point.value)}\.$", line), (facts.title, line)
    assert said["trait"] > 150 and said["pack"] > 40
    hook = next(f for f in products if f.id == "002.138.55")  # FINTORP Hook, Nickel-plated, 7 cm
    assert any(sentence(p, hook).endswith("is nickel-plated.") for p in plan(hook))


def test_invented_makers_and_home_claims_need_facts():
    mug = CopyFacts(id="101.929.56", title="KALAS Mug, Assorted colours", brand="IKEA", category="Mug",
                    description="Great for parties and everyday meals. Made of durable plastic and safe to use in "
                                "the dishwasher and microwave.")
    index = FactIndex(mug)
    text = ("My team of skilled artisans made it. It is safe to use in the dishwasher. It is non-toxic and resists "
            "high temperatures.")
    bad = {(c.kind, c.key) for c in unsupported(text, index)}
    assert bad == {("provenance", "artisan"), ("feature", "non toxic"), ("feature", "heat resistant")}


def test_a_stock_phrase_worn_across_the_catalog_is_dropped_but_a_name_never_is():
    """A real SmolLM2 sentence (bench/generate.py, Myntra, 2026-12-02): "are a luxury product that offers" on one
    page in six. Once three descriptions have it, the next one loses that sentence and keeps the rest."""
    book = PhraseBook()
    bag = CopyFacts(id="b", title="Murcia Women Hahk Black Handbags", brand="Murcia", category="Accessories")
    stock = ("The Murcia Women Hahk Black Handbags are a luxury product that offers a unique and exquisite blend of "
             "luxury and craftsmanship.")
    for title in ("Puma Men Black Shoes", "Nike Women Blue Tshirt", "Fossil Men Brown Watch"):
        other = CopyFacts(id=title, title=title, brand=title.split()[0], category="Apparel")
        book.add(stock.replace(bag.title, title), other)
    shoe = CopyFacts(id="s", title="Red Tape Men Brown Shoes", brand="Red Tape", category="Footwear")
    text = "The Red Tape Men Brown Shoes are a luxury product that offers comfort. It is made of leather."
    kept, dropped = book.drop_stock(text, shoe)
    assert kept == "It is made of leather." and [p.kind for p in dropped] == ["stock"]
    assert "already in 3 of 3 descriptions" in dropped[0].reason
    name_only = PhraseBook()
    for _ in range(5):
        name_only.add("The Murcia Women Hahk Black Handbags by Murcia.", bag)
    assert name_only.problems("The Murcia Women Hahk Black Handbags by Murcia.", bag) == []


def test_a_stock_sentence_stays_where_the_facts_cannot_write_the_text_back_up(ikea_store):
    """GRUNDTAL has four facts (name, steel, 80 cm, "Saves space on the worktop."): too few for a medium text.
    Of its two worn sentences the more worn goes and the other stays (marked found), rather than leave a stub; at a
    floor its facts can reach, both go."""
    _, _, store = ikea_store
    shelf = _facts(store, GRUNDTAL)
    worn = "It is a practical choice that offers a clean look."
    less = "This shelf will add a touch of style to your kitchen."
    book = PhraseBook()
    for i in range(5):
        other = CopyFacts(id=str(i), title=f"Shelf {i}", brand="IKEA", category="Wall shelf")
        book.add(worn, other)
        if i < 3:
            book.add(less, other)
    text = f"The GRUNDTAL wall shelf saves space on the worktop. {worn} {less}"
    points, base = plan(shelf), "The GRUNDTAL wall shelf saves space on the worktop."
    medium = CopyOptions(length="medium").min_words
    reach = len(fill(base, shelf, points, medium)[0].split())  # all the facts can write
    assert reach < medium
    floor = len(fill(text.replace(f" {worn}", ""), shelf, points, medium)[0].split())
    kept, report = book.drop_stock(text, shelf, partial(fills_up, facts=shelf, points=points, min_words=floor))
    assert kept == text.replace(f" {worn}", "")
    assert [(p.text, p.action) for p in report] == [(worn[:60], "removed"), (less[:60], "found")]
    kept, report = book.drop_stock(text, shelf, partial(fills_up, facts=shelf, points=points, min_words=medium))
    assert kept == text and {p.action for p in report} == {"found"}
    kept, report = book.drop_stock(text, shelf, partial(fills_up, facts=shelf, points=points, min_words=reach))
    assert kept == base and {p.action for p in report} == {"removed"}


def test_a_fact_sentence_is_never_a_fragment_the_checks_would_drop_again():
    """FINTORP (IKEA 002.138.55, "Nickel-plated" in its title): "Expect nickel-plated." is two words, a fragment to
    the garbled check, so `repair` dropped it after the write-up and the fact was lost (shoplens generate, seed 3).
    Even a wear that prefers the shortest template gets a sentence that survives the checks."""
    hook = CopyFacts(id="002.138.55", title="FINTORP Hook, Nickel-plated, 7 cm", brand="IKEA", category="Hook",
                     description="Use the hooks to store your kitchenware on the wall and fit more into your cabinets "
                                 "and drawers.")
    point = next(p for p in plan(hook) if p.value == "nickel-plated")
    line = sentence(point, hook, wear=len)
    assert "nickel-plated" in line and len(line.split()) > 2 and problems(line, hook) == []
    text, added = fill("", hook, plan(hook), CopyOptions().min_words, wear=len)
    assert point in added and "nickel-plated" in repair(text, hook)[0]


def test_fact_sentences_pick_the_template_the_catalog_has_worn_least():
    """Myntra's products share few facts (cotton, casual): two tees whose own template pick is the same say it
    differently once the book has counted the first page, and an empty book keeps each product's own pick."""
    def tee(i: int) -> CopyFacts:
        return CopyFacts(id=str(i), title=f"Roadster Men Tshirt {i}", brand="Roadster",
                         category="Apparel > Topwear > Tshirts")
    point = Point("material", "cotton", "cotton")
    first = tee(0)
    second = next(tee(i) for i in range(1, 200) if sentence(point, tee(i)) == sentence(point, first))
    book = PhraseBook()
    assert sentence(point, second, partial(book.wear, facts=second)) == sentence(point, second)
    book.add(sentence(point, first), first)
    worn = partial(book.wear, facts=second)
    line = sentence(point, second, worn)
    assert line != sentence(point, first) and "cotton" in line
    assert worn(line) < worn(sentence(point, first))


def test_wear_is_per_phrase_so_a_longer_template_is_not_penalised_for_its_length():
    """Summed wear would pick the template with the fewest phrases: a sentence whose every phrase is as worn as a
    shorter one's is as worn, and one whose phrases no description used is not worn at all."""
    shirt = CopyFacts(id="1", title="Roadster Men Tshirt", brand="Roadster", category="Apparel > Topwear > Tshirts")
    short, long = "It is made from soft cotton.", "It is made from soft cotton and is cut for casual days out."
    book = PhraseBook()
    book.add(long, shirt)
    assert book.wear(short, shirt) == book.wear(long, shirt) == 1.0
    assert book.wear("Machine wash it cold with like colours.", shirt) == 0.0


@pytest.mark.parametrize("category,word,plural", [
    ("Apparel > Topwear > Tshirts", "tshirts", True), ("Accessories > Watches > Watches", "watches", True),
    ("Box with lid", "box", False), ("Chest of 5 drawers", "chest", False), ("Rug, low pile", "rug", False),
    ("Quilt cover and 2 pillowcases", "set", False), ("Table+2 chairs, outdoor", "table", False),
    ("Packages > Dairy > Sour-Cream", "sour cream", False), ("Vegetables > Asparagus", "asparagus", False),
    ("Apparel > Dress", "dress", False), ("LED spotlight", "LED spotlight", False)])
def test_a_fact_sentence_names_the_product_by_its_noun(category, word, plural):
    """Real category levels of the three catalogs: the noun the fact sentences use, and whether verbs agree in the
    plural ("These tshirts are made of cotton", "This box measures 37x54x21 cm")."""
    assert noun(CopyFacts(id="p", title="T", category=category)) == Noun(word, plural)


def test_fact_sentences_agree_with_the_noun_and_skip_brand_templates_without_a_brand():
    tees = CopyFacts(id="t", title="Puma Men White Tshirts", brand="Puma", category="Apparel > Topwear > Tshirts")
    box = CopyFacts(id="b", title="KUGGIS Box with lid, White, 37x54x21 cm", category="Box with lid")
    lines = [sentence(Point(topic, value, value), facts) for facts in (tees, box) for topic, value in
             (("material", "cotton"), ("colour", "white"), ("fit", "regular fit"), ("price", "499 INR"))]
    for line in lines[:4]:
        assert not re.search(r"\b(?:It|it|This|this) (?:is|has)\b|\bcomes\b", line), line
    for line in lines[4:]:
        assert not re.search(r"\b(?:They|they|These|these) (?:are|have)\b|\bPuma\b|\bNone\b|^\s*(?:makes|cuts)", line), line
    for i in range(20):  # the product's identity never calls a plural noun "a tshirts"
        tee = CopyFacts(id=str(i), title="Nike Men Red Tshirts", category="Apparel > Topwear > Tshirts")
        assert " a tshirts" not in sentence(plan(tee)[0], tee)


def test_green_claims_need_facts():
    """A real SmolLM2 sentence (bench/generate.py, Myntra, 2026-12-02) on a Puma watch the catalog says nothing
    green about."""
    watch = CopyFacts(id="11134", title="Puma Men Dial With Steel finish frame Black Watches", brand="Puma",
                      category="Accessories > Watches > Watches")
    text = ("The brand is also known for their commitment to sustainability and eco-friendliness, which is reflected "
            "in their products.")
    assert {(c.kind, c.key) for c in unsupported(text, FactIndex(watch))} == {("feature", "sustainable"),
                                                                              ("feature", "eco")}


def test_style_examples_are_the_nearest_products_by_our_search(real_home):
    """With a published index, a product's style examples are its look-alikes by `SearchEngine.similar`, nearest
    first (those with a description worth imitating), not merely products of its category."""
    settings = load_settings(home=real_home)
    service = CopyService(settings, vision=False)
    library = StyleLibrary(service.store, service.similar_products)
    with service.store.session() as s:
        catalog = {p.id: facts_from_product(p) for p in s.query(Product)}
    cartons = [f for f in catalog.values() if f.category_leaf in ("Juice", "Milk")]  # grocery: short descriptions
    assert cartons
    for facts in cartons[:3]:
        near = [h.product.id for h in SearchEngine(settings, store=service.store).similar(facts.id, k=12).hits]
        wanted = [pid for pid in near if pid != facts.id and example_text(catalog[pid])]
        assert wanted
        assert [e.product_id for e in library.examples(facts, 2)] == wanted[:2]
        assert library.neighbours is not None  # still searching, not fallen back to categories
