"""The description's plan, made before the model writes: which facts, in which order, for this kind of product.

A 135M model given a bare fact list invents its own plan (and reads the field names out: "the product's brand
is"); given the points as short phrases in a sensible order it mostly phrases them. The plan also writes the
fallback: one plain sentence per point, used to bring a description that lost sentences to the grounding check
back above the length floor with nothing but verified facts (and to say when the facts are too few).

Points come from everything verified: the catalog fields and attributes, the title's own details ("Stainless
steel", "80 cm" in an IKEA title), the catalog's description (for home and food products, where it says what the
thing is for), visual attributes and the catalog names printed on the package.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from web.copywriter.facts import PRINTED_LABEL, CopyFacts
from web.copywriter.grounding import lexicon

# The families a category path falls into (its first level, lower case), and the order their points go in.
FAMILIES = {
    "fashion": ("apparel", "footwear", "accessories", "personal care", "sporting goods", "free items"),
    "food": ("fruit", "vegetables", "packages", "food", "grocery", "dairy", "drinks", "beverages", "bakery"),
}
ORDER = {
    "fashion": ("identity", "colour", "accent", "material", "pattern", "fit", "attribute", "use", "audience",
                "printed", "price"),
    "home": ("identity", "material", "colour", "size", "note", "attribute", "use", "printed", "price"),
    "food": ("identity", "note", "attribute", "colour", "printed", "price"),
}
# attribute name (lower case) → topic
TOPICS = {"fabric": "material", "material": "material", "fabric 2": "material", "pattern": "pattern",
          "print or pattern type": "pattern", "fit": "fit", "usage": "use", "occasion": "use", "colour": "colour",
          "colour1": "accent", "colour2": "accent"}
_SIZE = re.compile(r"^\d[\d.,x×/ ]*\s?(?:cm|mm|m|g|kg|ml|cl|l|pcs|pack|\")?$|\d\s?(?:cm|mm|kg|ml|g)\b", re.I)
_BOILERPLATE = re.compile(r"view more product information", re.I)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
TEMPLATES = {
    "identity": ("The {title} from {brand} is part of our {kind} range.", "Meet the {title} by {brand}, from our "
                 "{kind} range.", "From {brand} comes the {title}, one of our {kind} picks.",
                 "{brand} makes the {title}.", "This is the {title}, a {kind} by {brand}.",
                 "Our {kind} selection includes the {title} from {brand}."),
    "identity_nobrand": ("Meet the {title}, from our {kind} range.", "Find the {title} in our {kind} range.",
                         "Say hello to the {title}, one of our {kind} picks.", "This is the {title}.",
                         "The {title} joins our {kind} selection.", "Here is the {title}, a {kind} worth a look."),
    "colour": ("It comes in {value}.", "It is finished in {value}.", "This one is {value}.", "It is done in {value}.",
               "You get it in {value}.", "The shade is {value}."),
    "material": ("It is made of {value}.", "It is made from {value}.", "Its material is {value}.",
                 "{Value} is what it is made of.", "It is crafted from {value}.", "Built from {value}."),
    "size": ("It measures {value}.", "Its size is {value}.", "It is {value}.", "In size it is {value}.",
             "The dimensions are {value}.", "It takes up {value}."),
    "pattern": ("It has a {value} look.", "The design is {value}.", "It is {value}.", "Expect a {value} design.",
                "The look is {value}."),
    "fit": ("It has a {value}.", "Expect a {value}.", "It is cut for a {value}.", "The cut is a {value}.",
            "It sits with a {value}."),
    "use": ("It suits {value} wear.", "A good pick for {value} days.", "Made with {value} use in mind.",
            "Reach for it on {value} days.", "It is at home in {value} settings."),
    "audience": ("It is made for {value}.", "It is designed for {value}.", "A choice for {value}.",
                 "Made with {value} in mind.", "It is meant for {value}."),
    "printed": ("The package reads {value}.", "The pack says {value}.", "The label reads {value}.",
                "Look for {value} on the pack.", "The front of the pack says {value}."),
    "price": ("It is priced at {value}.", "It costs {value}.", "It sells for {value}.", "Yours for {value}.",
              "The price is {value}."),
    "accent": ("It has {value} accents.", "Details come in {value}.", "It is set off with {value}.",
               "Accents come in {value}.", "{Value} details finish it."),
    "attribute": ("It has {value}.", "It features {value}.", "Expect {value}.", "It offers {value}.",
                  "You also get {value}."),
}


@dataclass(frozen=True)
class Point:
    """One thing the description should say: its topic, the phrase the model is given, the verified value."""

    topic: str
    phrase: str
    value: str


def family(facts: CopyFacts) -> str:
    """fashion | food | home: from the category's first level; home (objects, fittings, furniture) otherwise."""
    top = (facts.category or "").split(">")[0].strip().lower()
    return next((name for name, tops in FAMILIES.items() if top in tops), "home")


def _kind(facts: CopyFacts) -> str:
    leaf = (facts.category_leaf or facts.category or "product").split(",")[0].strip()  # "Rug, low pile": a rug
    return " ".join(w if w.isupper() and len(w) > 1 else w.lower() for w in leaf.split())  # "LED spotlight"


def _attribute_phrase(key: str, value: str) -> str:
    """"Fit: Regular Fit" → "regular fit"; "Sleeve Length: Short Sleeves" → "short sleeves"; "Ankle Height:
    Regular" → "regular ankle height"."""
    v = value.lower()
    return v if any(w in v for w in key.lower().split()) or len(v.split()) > 1 else f"{v} {key.lower()}"


def detail_topic(detail: str) -> str:
    """What a comma part of a title says: "80 cm" a size, "Stainless steel" or "Clear glass" a material,
    "Black/white" or "Assorted colours" a colour, anything else ("low pile", "built-in lighting") a feature."""
    if _SIZE.search(detail):
        return "size"
    kinds = {kind for kind, pattern, _, _ in lexicon() if kind in ("material", "colour") and pattern.search(detail)}
    if "material" in kinds:
        return "material"
    return "colour" if "colour" in kinds or re.search(r"\bcolou?rs?\b", detail, re.I) else "attribute"


def notes(facts: CopyFacts, limit: int = 3) -> list[str]:
    """The first sentences of the catalog's own description, when they are short enough to be one point each."""
    text = _BOILERPLATE.sub("", facts.description or "").strip()
    found = []
    for sentence in _SENTENCE.split(text):
        sentence = sentence.strip()
        if not 3 <= len(sentence.split()) <= 30 or not sentence.endswith((".", "!")):
            break
        found.append(sentence)
        if len(found) == limit:
            break
    return found


def plan(facts: CopyFacts) -> list[Point]:
    """The points of this product's description, in its family's order (facts that don't fit a slot go where
    `attribute` is); each fact once."""
    fam = family(facts)
    name, *details = [p.strip() for p in (facts.title or "").split(",") if p.strip()] or [facts.id]
    kind = _kind(facts)
    said = f"the {name}" if kind.lower() in name.lower() else f"the {name}, a {kind}"
    points = [Point("identity", said + (f" from {facts.brand}" if facts.brand and facts.brand.lower() not in
                                        name.lower() else ""), name)]
    if facts.colour:
        points.append(Point("colour", f"in {facts.colour.lower()}", facts.colour.lower()))
    for detail in details:
        topic = detail_topic(detail)
        value = detail if topic == "size" else detail.lower()
        points.append(Point(topic, value, value))
    seen = {p.value.lower() for p in points}
    hidden = {"Product", "Brand", "Category", "Colour", "Price", "For", PRINTED_LABEL}
    for key, value in facts.prompt_facts():
        if key in hidden or value.lower() in seen:
            continue
        seen.add(value.lower())
        topic = TOPICS.get(key.lower(), "attribute")
        text = value.lower() if topic in ("material", "use", "colour", "pattern", "accent") else _attribute_phrase(key, value)
        points.append(Point(topic, text, text))
    if fam != "fashion":
        points += [Point("note", note, note) for note in notes(facts)]
    if facts.gender:
        who = {"men": "men", "women": "women", "boys": "boys", "girls": "girls", "unisex": "men and women"}
        value = who.get(facts.gender.lower(), facts.gender.lower())
        points.append(Point("audience", f"for {value}", value))
    if facts.printed_names:
        value = " ".join(facts.printed_names)
        points.append(Point("printed", f"the package reads {value}", value))
    if facts.price is not None:
        value = f"{facts.price:g} {facts.currency or 'INR'}"
        points.append(Point("price", f"priced at {value}", value))
    order = ORDER[fam]
    rank = {topic: i for i, topic in enumerate(order)}
    return sorted(points, key=lambda p: rank.get(p.topic, rank["attribute"]))


def plan_text(points: list[Point]) -> str:
    """The plan as the prompt gives it: one short phrase a line, no field names."""
    return "\n".join(f"{i}. {p.phrase}" for i, p in enumerate(points, 1))


def _pick(options: tuple[str, ...], key: str) -> str:
    """A template chosen by the product and topic, so a catalog's fallback sentences don't all read alike."""
    return options[int(hashlib.sha1(key.encode()).hexdigest(), 16) % len(options)]


def sentence(point: Point, facts: CopyFacts) -> str:
    """One plain sentence saying `point`, from its verified value only."""
    if point.topic == "note":
        return point.value
    if point.topic == "identity":
        brand = facts.brand if facts.brand and facts.brand.lower() not in facts.title.lower() else ""
        template = _pick(TEMPLATES["identity" if brand else "identity_nobrand"], facts.id)
        return template.format(title=point.value, kind=_kind(facts), brand=brand or facts.brand or "")
    template = _pick(TEMPLATES[point.topic], f"{facts.id}:{point.topic}:{point.value}")  # points of one topic vary
    text = template.format(value=point.value, Value=point.value[:1].upper() + point.value[1:])
    return re.sub(r"\b([Aa]) (?=[aeiouAEIOU])", r"\1n ", text)  # "an abstract look"


def covered(point: Point, text: str) -> bool:
    """Whether `text` already says `point`: most of its value's words are in it."""
    wanted = [w for w in re.findall(r"\w+", point.value.lower()) if len(w) > 2 or w.isdigit()]
    have = set(re.findall(r"\w+", text.lower()))
    return bool(wanted) and sum(w in have for w in wanted) >= max(1, round(0.6 * len(wanted)))


FEW_POINTS = 4  # a plan this short is said whole: with so few facts, each one counts


def fill(text: str, facts: CopyFacts, points: list[Point], min_words: int) -> tuple[str, list[Point]]:
    """`text` brought up to `min_words` with one sentence per point it leaves out (the product's identity first,
    the rest after); returns the text and the points added. Stops at the floor or when the points run out; a plan
    of FEW_POINTS or fewer is said whole whatever the length."""
    added: list[Point] = []
    for point in points:
        if len(text.split()) >= min_words and len(points) > FEW_POINTS:
            break
        if covered(point, text):
            continue
        line = sentence(point, facts)
        text = f"{line} {text}".strip() if point.topic == "identity" else f"{text} {line}".strip()
        added.append(point)
    return text, added
