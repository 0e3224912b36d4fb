"""The description's plan, made before the model writes: which facts, in which order, for this kind of product.

A 135M model given a bare fact list invents its own plan (and reads the field names out: "the product's brand
is"); given the points as short phrases in a sensible order it mostly phrases them. Each point can also be
said as one plain sentence (web/copywriter/phrasing.py), which brings a description that lost sentences to the
grounding check back above the length floor with nothing but verified facts.

Points come from everything verified: the catalog fields and attributes, the title's own details ("Stainless
steel", "80 cm" in an IKEA title), the catalog's description (for home and food products, where it says what the
thing is for), visual attributes and the catalog names printed on the package.
"""
from __future__ import annotations

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
    "home": ("identity", "material", "colour", "size", "trait", "pack", "note", "attribute", "use", "printed",
             "price"),
    "food": ("identity", "note", "attribute", "colour", "printed", "price"),
}
# attribute name (lower case) → topic
TOPICS = {"fabric": "material", "material": "material", "fabric 2": "material", "pattern": "pattern",
          "print or pattern type": "pattern", "fit": "fit", "usage": "use", "occasion": "use", "colour": "colour",
          "colour1": "accent", "colour2": "accent"}
_SIZE = re.compile(r"^\d[\d.,x×/ ]*\s?(?:cm|mm|m|g|kg|ml|cl|l|pcs|pack|\")?$|\d\s?(?:cm|mm|kg|ml|g)\b", re.I)
# A title detail that describes rather than names ("Nickel-plated", "Flatwoven", "Double-sided", "Foldable"): said
# with "is", where "It has nickel-plated." or "It is made of chrome-plated." would not be English.
_TRAIT = re.compile(r"(?:[a-z0-9]+-)*(?:[a-z]{3,}(?:ed|able|ible|ive|ous|ent|al)|[a-z]*woven)|(?:in/)?outdoor|indoor|"
                    r"hand-?made|high|low|firmer?|softer?", re.I)  # a stem of 3+ letters: "table" is no trait
_OUTDOOR = {"outdoor": "for outdoor use", "in/outdoor": "for indoor and outdoor use", "indoor": "for indoor use"}
_PACK = re.compile(r"set of \d+|\d+ pairs?", re.I)  # "Set of 2", "1 pair": what the customer gets
_BOILERPLATE = re.compile(r"view more product information", re.I)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
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


def category_kind(facts: CopyFacts) -> str:
    """The category's most specific level as a phrase ("rug", "LED spotlight", "tshirts")."""
    leaf = (facts.category_leaf or facts.category or "product").split(",")[0].strip()  # "Rug, low pile": a rug
    return " ".join(w if w.isupper() and len(w) > 1 else w.lower() for w in leaf.split())  # "LED spotlight"


def _attribute_phrase(key: str, value: str) -> str:
    """"Fit: Regular Fit" → "regular fit"; "Sleeve Length: Short Sleeves" → "short sleeves"; "Ankle Height:
    Regular" → "regular ankle height"."""
    v = value.lower()
    return v if any(w in v for w in key.lower().split()) or len(v.split()) > 1 else f"{v} {key.lower()}"


def detail_topic(detail: str) -> str:
    """What a comma part of a title says: "80 cm" a size, "Stainless steel" or "Clear glass" a material,
    "Black/white", "Black-brown" or "Assorted colours" a colour, "Nickel-plated" or "Outdoor" a trait, "Set of 2" a
    pack, anything else ("low pile", "built-in lighting", "2 doors") a feature."""
    if _SIZE.search(detail):
        return "size"
    if _PACK.fullmatch(detail):
        return "pack"
    kinds = _lexicon_kinds(detail)
    if detail.lower() == "natural":  # IKEA's colour name for undyed jute, wood and linen
        return "colour"
    if _TRAIT.fullmatch(detail) and (detail.lower().endswith("ed") or not kinds):  # "chrome-plated", not "metal"
        return "trait"
    if "material" in kinds:
        return "material"
    parts = [part for part in re.split(r"[-/ ]", detail) if part]
    if len(parts) > 1 and all("colour" in _lexicon_kinds(part) for part in parts):  # "Black-brown", "Grey-green"
        return "colour"
    return "colour" if "colour" in kinds or re.search(r"\bcolou?rs?\b", detail, re.I) else "attribute"


def _lexicon_kinds(text: str) -> set[str]:
    """Which of material and colour the grounding lexicon finds in `text`: its patterns stop at hyphens, so
    "Black-brown" is neither until its parts are asked one by one."""
    return {kind for kind, pattern, _, _ in lexicon() if kind in ("material", "colour") and pattern.search(text)}


def _detail_value(topic: str, detail: str) -> str:
    """A title detail as the fact sentences say it: "for outdoor use", "a set of 2", "80 cm", "nickel-plated"."""
    if topic == "size":
        return detail
    value = detail.lower()
    if topic == "trait":
        return _OUTDOOR.get(value, value)
    return f"a {value}" if topic == "pack" and value.startswith("set") else value


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
    kind = category_kind(facts)
    said = f"the {name}" if kind.lower() in name.lower() else f"the {name}, a {kind}"
    points = [Point("identity", said + (f" from {facts.brand}" if facts.brand and facts.brand.lower() not in
                                        name.lower() else ""), name)]
    if facts.colour:
        points.append(Point("colour", f"in {facts.colour.lower()}", facts.colour.lower()))
    for detail in details:
        topic = detail_topic(detail)
        value = _detail_value(topic, detail)
        points.append(Point(topic, value, value))
    seen = {p.value.lower() for p in points}
    hidden = {"Product", "Brand", "Category", "Colour", "Price", "For", PRINTED_LABEL}
    for key, value in facts.prompt_facts():
        if key in hidden or value.lower() in seen:
            continue
        seen.add(value.lower())
        topic = TOPICS.get(key.lower(), "attribute")
        text = value.lower() if topic in ("material", "use", "colour", "pattern", "accent") else _attribute_phrase(key, value)
        if topic == "material" and re.fullmatch(r"[a-z]+ed", text):
            text += " fabric"  # Myntra's "Fabric: Blended": "made from blended fabric", not "made from blended"
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
