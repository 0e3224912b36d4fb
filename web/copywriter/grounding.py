"""The grounding check: every checkable claim in a copy text, matched against the product's facts.

A small model invents details ("size 20 buckle" for a plain boot), so nothing it writes is trusted. Claims are
found with one lexicon of patterns (colours, materials, sizes, numbers, brands, genders, product types, fabric
features, patterns, sleeves, necklines, "available in many colours"); the same patterns run over the facts, so a
claim is supported exactly when the facts name the same thing (or something that implies it: "navy blue"
supports "blue"). Unsupported claims are reported with their character span, so the page can highlight them and
`remove_unsupported` can drop the sentences that carry them.

Words printed on the package (`CopyFacts.printed`) are evidence of names only. A sentence that says what the
package reads ("the carton reads Tropicana") is a `printed` claim, supported when the named words are printed names
(title and brand words read on the package). A "made of / contains / ingredients" sentence whose words appear in
the printed text but not in the catalog's facts is an unsupported `composition` claim: OCR of "12%FETT" or "HAVRE"
is not a fact the catalog confirms.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Iterable

from indexer.reading.words import fold, one_misread, quantities, words
from web.copywriter.facts import CopyFacts

# (kind, regex, key, keys it implies). Patterns are matched case-insensitively on word boundaries.
_LEXICON_SPEC: list[tuple[str, str, str, tuple[str, ...]]] = []


def _add(kind: str, entries: Iterable[tuple[str, str] | tuple[str, str, tuple[str, ...]]]) -> None:
    for entry in entries:
        pattern, key, *implied = entry
        _LEXICON_SPEC.append((kind, pattern, key, tuple(implied[0]) if implied else ()))


_add("colour", [
    (r"navy(?:[- ]blue)?", "navy", ("blue",)), (r"turquoise(?:[- ]blue)?", "turquoise", ("blue",)),
    (r"sea[- ]green", "sea green", ("green",)), (r"lime(?:[- ]green)?", "lime", ("green",)),
    (r"fluorescent[- ]green", "fluorescent green", ("green",)), (r"olive(?:[- ]green)?", "olive", ("green",)),
    (r"coffee[- ]brown", "coffee brown", ("brown",)), (r"mushroom[- ]brown", "mushroom brown", ("brown",)),
    (r"grey[- ]melange", "grey melange", ("grey",)), (r"off[- ]white", "off white", ("white", "cream")),
    (r"black", "black"), (r"white", "white"), (r"blue", "blue"), (r"red", "red"), (r"green", "green"),
    (r"yellow", "yellow"), (r"pink", "pink"), (r"purple", "purple"), (r"gr[ae]y", "grey"), (r"brown", "brown"),
    (r"beige", "beige"), (r"cream", "cream"), (r"maroon", "maroon"), (r"burgundy", "burgundy", ("maroon",)),
    (r"wine", "burgundy"), (r"orange", "orange"), (r"gold(?:en)?", "gold"), (r"silver", "silver"),
    (r"bronze", "bronze"), (r"copper", "copper"), (r"khaki", "khaki"), (r"lavender", "lavender", ("purple",)),
    (r"magenta", "magenta", ("pink",)), (r"fuchsia", "magenta"), (r"mauve", "mauve"), (r"mustard", "mustard"),
    (r"peach", "peach"), (r"rust", "rust"), (r"teal", "teal"), (r"charcoal", "charcoal", ("grey",)),
    (r"tan", "tan"), (r"taupe", "taupe"), (r"nude", "nude"), (r"coral", "coral"), (r"violet", "violet"),
    (r"indigo", "indigo"), (r"aqua", "aqua"), (r"ivory", "ivory", ("cream",)), (r"mint", "mint"),
    (r"metallic", "metallic"), (r"multi[- ]?colou?r(?:ed)?|multi", "multi"), (r"steel", "steel"),
    (r"skin", "skin"), (r"rose", "rose", ("pink",)), (r"scarlet", "red"), (r"crimson", "red"),
    (r"emerald", "green"), (r"sky[- ]blue", "blue"), (r"royal[- ]blue", "blue"),
])
_add("material", [
    (r"cotton", "cotton"), (r"polyester|poly", "polyester"), (r"(?:faux |pu |genuine )?leather", "leather"),
    (r"suede", "suede"), (r"denim", "denim"), (r"silk", "silk"), (r"wool(?:l?en)?", "wool"), (r"linen", "linen"),
    (r"nylon", "nylon"), (r"rayon", "rayon"), (r"viscose", "viscose"),
    (r"spandex|elastane|lycra", "elastane"), (r"canvas", "canvas"), (r"rubber", "rubber"), (r"mesh", "mesh"),
    (r"satin", "satin"), (r"chiffon", "chiffon"), (r"georgette", "georgette"), (r"velvet", "velvet"),
    (r"fleece", "fleece"), (r"cashmere", "cashmere"), (r"acrylic", "acrylic"), (r"synthetic", "synthetic"),
    (r"modal", "modal"), (r"crepe", "crepe"), (r"khadi", "khadi"), (r"jute", "jute"), (r"metal", "metal"),
    (r"stainless steel", "steel"), (r"plastic", "plastic"), (r"brass", "brass"), (r"ceramic", "ceramic"),
    (r"wood(?:en)?", "wood"), (r"bamboo", "bamboo"), (r"terry", "terry"), (r"corduroy", "corduroy"),
    (r"chambray", "chambray"), (r"microfib(?:er|re)", "microfibre"), (r"(?:faux )?fur", "fur"),
    (r"sterling silver", "silver"), (r"platinum", "platinum"), (r"diamonds?", "diamond"),
    (r"crystals?", "crystal"), (r"pearls?", "pearl"), (r"alloy", "alloy"), (r"eva", "eva"),
    # home materials (IKEA titles name them: "Clear glass", "Solid pine", "Chrome-plated")
    (r"glass", "glass"), (r"porcelain", "porcelain"), (r"stoneware|earthenware", "stoneware"),
    (r"alumin(?:i)?um", "aluminium"), (r"(?:cast|wrought) iron|iron (?:frame|base|legs)", "iron"), (r"concrete", "concrete"),
    (r"marble", "marble"), (r"rattan", "rattan"), (r"paper", "paper"), (r"cardboard", "cardboard"),
    (r"(?:memory )?foam", "foam"), (r"cork", "cork"), (r"chrome(?:[- ]plated)?", "chrome"),
    (r"(?:galvani[sz]ed |carbon )?steel", "steel"), (r"(?:solid )?(?:pine|oak|birch|beech|acacia|walnut)",
                                                      "solid wood", ("wood",)),
])
_add("feature", [
    (r"water[- ]?proof", "waterproof"), (r"water[- ]resistant", "water resistant", ("waterproof",)),
    (r"breathable", "breathable"), (r"moisture[- ]wicking|sweat[- ]wicking|wicks?", "wicking"),
    (r"quick[- ]dry(?:ing)?", "quick dry"), (r"wrinkle[- ](?:free|resistant)", "wrinkle free"),
    (r"stretch(?:able|y)?", "stretch"), (r"anti[- ]?(?:bacterial|microbial)", "antibacterial"),
    (r"machine[- ]wash(?:able)?", "machine wash"), (r"hand[- ]wash(?:able)?", "hand wash"),
    (r"dry[- ]clean(?: only)?", "dry clean"), (r"warranty|guarantee[d]?", "warranty"),
    (r"hand(?:made|[- ]crafted|crafted)", "handmade"), (r"eco[- ]friendl(?:y|iness)|environmentally friendly", "eco"),
    (r"organic", "organic"), (r"sustainab(?:le|ly|ility)", "sustainable"), (r"recycled", "recycled"), (r"vegan", "vegan"),
    (r"hypo[- ]?allergenic", "hypoallergenic"), (r"uv(?: protection)?|spf ?\d*", "uv"),
    (r"shock[- ]?(?:proof|resistant)", "shockproof"), (r"scratch[- ](?:proof|resistant)", "scratch resistant"),
    (r"reversible", "reversible"), (r"detachable", "detachable"), (r"padded", "padded"),
    (r"non[- ]?slip|anti[- ]?skid|slip[- ]resistant", "anti slip"), (r"odou?r[- ](?:free|resistant)", "odour"),
    # home and food claims (IKEA, grocery): said only where the catalog says them
    (r"dishwasher[- ]safe|(?:safe (?:to use )?in|goes in) the dishwasher", "dishwasher"),
    (r"microwave[- ]safe|(?:safe (?:to use )?in|goes in) the microwave", "microwave"),
    (r"oven[- ](?:safe|proof)", "oven safe"), (r"non[- ]?toxic|bpa[- ]free|food[- ]safe", "non toxic"),
    (r"(?:rust|corrosion)[- ]?(?:proof|resistant|free)|resist(?:ant to|s) (?:rust|corrosion)", "rust proof"),
    (r"heat[- ](?:resistant|proof)|(?:withstand|resist)s? (?:high )?(?:heat|temperatures)", "heat resistant"),
    (r"fire[- ](?:proof|retardant|resistant)|flame[- ]retardant", "fire retardant"),
    (r"stain[- ](?:resistant|proof|repellent)", "stain resistant"), (r"energy[- ](?:saving|efficient)", "energy"),
    (r"gluten[- ]free", "gluten free"), (r"lactose[- ]free", "lactose free"), (r"sugar[- ]free|no added sugar",
                                                                              "sugar free"),
    (r"(?:low|reduced)[- ]fat|fat[- ]free", "low fat"), (r"preservative[- ]free|no preservatives", "no preservatives"),
    (r"(?:all[- ])?natural ingredients|100% natural", "natural"), (r"fair[- ]?trade", "fair trade"),
])
# Who made it and how: a small model invents makers ("my team of skilled artisans") and awards.
_add("provenance", [
    (r"artisans?|craftsm[ae]n|craftspeople|(?:skilled|expert) (?:team|workers|hands)|(?:my|our) team",
     "artisan"), (r"family[- ](?:owned|run|business)|since (?:1[89]|20)\d\d", "heritage"),
    (r"award[- ]winning|certified|(?:approved|recommended) by", "award"),
])
_add("pattern", [
    (r"strip(?:ed|es)", "striped"), (r"check(?:ed|s)|plaid|checkered|tartan", "checked"),
    (r"print(?:ed|s)?", "printed"), (r"solid", "solid"), (r"plain", "solid"), (r"floral|flowers?", "floral"),
    (r"polka[- ]dots?", "polka"), (r"graphic", "graphic", ("printed",)), (r"embroider(?:ed|y)", "embroidered"),
    (r"camo(?:uflage)?", "camouflage"), (r"paisley", "paisley"), (r"geometric", "geometric"),
    (r"tie[- ]dye", "tie dye"), (r"sequin(?:ned|s)?", "sequinned"), (r"animal print|leopard", "animal"),
    (r"colou?r[- ]?block(?:ed)?", "colourblocked"),
])
_add("sleeve", [
    (r"sleeveless", "sleeveless"), (r"(?:short|half)[- ]sleeve[sd]?", "short sleeves"),
    (r"(?:long|full)[- ]sleeve[sd]?", "long sleeves"), (r"three[- ]quarter sleeves?|3/4th? sleeves?", "3/4 sleeves"),
    (r"cap sleeves?", "cap sleeves"), (r"puff(?:ed)? sleeves?", "puff sleeves"),
])
_add("neckline", [
    (r"(?:round|crew)[- ]neck(?:line)?", "round neck"), (r"v[- ]neck(?:line)?", "v neck"),
    (r"polo(?: collar)?", "polo"), (r"mandarin collar", "mandarin collar"), (r"boat[- ]neck", "boat neck"),
    (r"(?:turtle|high)[- ]neck", "high neck"), (r"hood(?:ed|ie|ies)?", "hood"), (r"scoop[- ]neck", "scoop neck"),
    (r"henley", "henley"), (r"collar(?:ed)?", "collar"),
])
_add("gender", [
    (r"unisex", "unisex", ("men", "women")), (r"wom[ae]n(?:'s)?|ladies|lady|female|feminine", "women"),
    (r"m[ae]n(?:'s)?|gentlem[ae]n|guys|male|masculine", "men"), (r"boys?(?:')?(?:'s)?", "boys", ("kids",)),
    (r"girls?(?:')?(?:'s)?", "girls", ("kids",)), (r"kids|children|child(?:'s)?|toddlers?", "kids"),
    (r"she|her|hers|herself", "her"), (r"he|him|his|himself", "him"),
])
_add("category", [
    (r"t[- ]?shirts?|tees?", "tshirt", ("shirt",)), (r"(?<!t-)(?<!t )shirts?", "shirt"), (r"dress(?:es)?", "dress"),
    (r"jeans|jeggings", "jeans"), (r"trousers|pants|chinos|joggers", "trousers"), (r"shorts", "shorts"),
    (r"skirts?", "skirt"), (r"jackets?|blazers?|coats?", "jacket"), (r"sweaters?|pullovers?|cardigans?", "sweater"),
    (r"sweatshirts?", "sweatshirt"), (r"kurta?s?|kurtis?|tunics?", "kurta"), (r"sarees?|saris?", "saree"),
    (r"leggings", "leggings"), (r"shoes?|sneakers?|trainers?", "shoe"), (r"sandals?|floaters?", "sandal"),
    (r"slippers?|flip[- ]?flops?", "flip flop"), (r"heels|stilettos|pumps", "heels"), (r"boots?|booties", "boot"),
    (r"loafers?|moccasins?", "loafer"), (r"socks?", "sock"), (r"watch(?:es)?|timepieces?|wristwatch(?:es)?", "watch"),
    (r"hand ?bags?|totes?|clutch(?:es)?|purses?|satchels?|bags?", "bag"), (r"backpacks?|rucksacks?", "backpack"),
    (r"wallets?", "wallet"), (r"belts?", "belt"), (r"caps?(?! sleeve)|hats?", "cap"),
    (r"sunglasses|shades|eyewear", "sunglasses"), (r"scarf|scarves|stoles?|mufflers?|dupattas?", "scarf"),
    (r"earrings?", "earrings"), (r"necklaces?|pendants?|chains?", "necklace"), (r"bracelets?|bangles?", "bracelet"),
    (r"perfumes?|fragrances?|deodorants?|cologne|body mist", "fragrance"), (r"lipsticks?|lip gloss", "lipstick"),
    (r"nail polish|nail enamel", "nail polish"), (r"briefs|boxers|trunks|bras?|innerwear|lingerie|undergarments?|underwear", "innerwear"),
    (r"jumpsuits?|rompers?", "jumpsuit"), (r"night ?suits?|nightdress|nightwear|pyjamas|pajamas", "nightwear"),
    (r"swimwear|swimsuits?|bikinis?", "swimwear"), (r"track ?suits?|track ?pants", "trackwear"),
    (r"accessor(?:y|ies)", "accessory"), (r"footwear", "footwear", ("shoe",)), (r"jerseys?", "tshirt"),
])
_add("availability", [
    (r"(?:available|comes?) in (?:a )?(?:wide |whole |great )?(?:range|variety|choice|selection|number) of\b"
     r"|(?:a |wide |whole )?(?:range|variety|array|selection|choice) of (?:\w+ ){0,2}"
     r"(?:colou?rs|shades|sizes|styles|designs|hues|options|fits|patterns|lengths)"
     r"|(?:all|various|different|multiple|several|many) (?:colou?rs|shades|sizes|styles|designs|hues|fits)",
     "availability"),
    (r"limited[- ](?:time|edition|availability|stock|period)|sold out|(?:in|out of) stock|free (?:shipping|delivery)"
     r"|discount(?:ed)?|on sale|best[- ]?sell(?:er|ing)|bestsell(?:er|ing)|exclusive(?:ly)? (?:at|on|to)",
     "availability"),
])
_add("size", [
    (r"sizes? (?:\d+(?:\.\d+)?|xx?[sl]|xxxl|\dxl|s|m|l|small|medium|large|free|one)", "size"),
    (r"free size|one size(?: fits all)?", "free size"),
])

_NUMBER_WORDS = {"two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7", "eight": "8",
                 "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "dozen": "12", "twenty": "20",
                 "hundred": "100", "thousand": "1000"}
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*(?:%|x)?(?![\w])|\b(?:" + "|".join(_NUMBER_WORDS) + r")\b", re.I)
_SIZE_LETTERS = re.compile(r"\b(?:XXS|XS|XL|XXL|XXXL|[2-5]XL)\b")  # case-sensitive: "xl" in prose is rare
# Product types that only name what to wear it with are not claims about the product.
_STYLING_CUE = re.compile(r"\b(?:pair(?:ed|s|ing)?|team(?:ed|s|ing)?|match(?:ed|es|ing)?|style (?:it|them)|"
                          r"combine[ds]?|complement(?:s|ed|ing)?|go(?:es)? well|wear (?:it|them) with|"
                          r"layer(?:ed)?)\b", re.I)
# Kinds that, after a styling cue, describe the other garment ("pair it with black jeans").
_STYLING_KINDS = frozenset({"category", "colour", "material", "pattern"})
# What the package reads: a cue ("the label reads", "printed on the carton") and then a quoted phrase or
# Capitalised words (case-sensitive, so "printed on the front in bold" names nothing).
_PRINTED_CUE = (r"(?i:(?:reads|says|spells(?: out)?|labell?ed(?: with| as)?|(?:printed|written) (?:on|across)"
                r"|bears the (?:name|words?|logo))\b)[^.!?\n\"“]{0,30}?")
_PRINTED = re.compile(_PRINTED_CUE + r"(?:[\"“‘]([^\"”’\n]{1,40})[\"”’]"
                      r"|((?:[A-ZÄÖÅ][\w&!'-]*)(?: (?:[A-ZÄÖÅ][\w&!'-]*)){0,3}))")
# What a product is made of, up to the end of the clause.
_COMPOSITION = re.compile(r"(?<![\w-])(?:made (?:of|from|with)|contains?|containing|consists? of|composed of|"
                          r"ingredients?(?: are| include| such as)?:?)\s+((?:[^.!?;\n]|(?<=\d)\.(?=\d)){1,60})", re.I)
_FILLER = frozenset({"and", "the", "with", "its", "for", "from", "only", "also", "all", "per", "real", "just"})
_SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*(?:\s+|$)|\n+")
# Brands that are everyday words in copy ("classic", "denim", "image"): not checkable as brands.
_WORD_BRANDS = frozenset("""and|basics|denim|image|music|queen|fortune|genesis|joker|mineral|homme|police|turtle|
tortoise|span|strapless|streetwear|w|id|24|18+|test|vogue|york|ant|doodle|helix|catwalk|coolers|diva|elle|folklore|
gliders|guerrilla|mayhem|senorita|sepia|palm tree|red rose|mother earth|black coffee|colour me|rolling stone|
free authority|jungle book|campbell|maxima|myntra|classic polo|alma|marvel|superman|batman|disney|fifa|f5|inc 5|
revv|tonga|spinn|portia|proline|probase|estelle|deborah|roxy|shree|mtv|nautilus|lovable|chimp|ediots|parx|rocia|
murcia|beyouty|yelloe|gas|cat|hm|and|only|pieces|swayam|joker|status quo|image""".replace("\n", "").split("|"))


@dataclass(frozen=True)
class Claim:
    """One checkable statement in a copy text; `action` says what the copywriter did about an unsupported one."""

    kind: str
    text: str
    key: str
    start: int
    end: int
    supported: bool
    reason: str = ""
    action: str = "kept"  # kept | removed | regenerated

    def to_json(self) -> dict:
        return asdict(self)


@lru_cache(maxsize=1)
def lexicon() -> list[tuple[str, re.Pattern, str, tuple[str, ...]]]:
    return [(kind, re.compile(rf"(?<![\w-])(?:{pattern})(?![\w-])", re.I), key, implied)
            for kind, pattern, key, implied in _LEXICON_SPEC]


def _brand_pattern(brands: frozenset[str]) -> re.Pattern | None:
    """Known brands as written (and in Title Case), longest first; everyday-word brands left out."""
    names = set()
    for brand in brands:
        if brand and brand.strip().lower() not in _WORD_BRANDS and len(brand.strip()) > 2:
            names.update({brand.strip(), brand.strip().title()})
    if not names:
        return None
    alternatives = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return re.compile(rf"(?<![\w-])(?:{alternatives})(?![\w-])")


_brand_pattern_cached = lru_cache(maxsize=8)(_brand_pattern)


def _normalise_number(text: str) -> str:
    text = text.lower().rstrip("x")
    if text in _NUMBER_WORDS:
        return _NUMBER_WORDS[text]
    text = text.replace(",", "")
    try:
        value = float(text.rstrip("%"))
    except ValueError:
        return text
    return f"{value:g}" + ("%" if text.endswith("%") else "")


class FactIndex:
    """The keys the facts support, per claim kind; built once per product."""

    def __init__(self, facts: CopyFacts, known_brands: Iterable[str] = ()) -> None:
        self.facts = facts
        evidence = facts.evidence_text()
        self.brands = frozenset(b for b in known_brands if b) | ({facts.brand} if facts.brand else frozenset())
        self.supported: set[tuple[str, str]] = set()
        for claim in _raw_claims(evidence, self.brands):
            self.supported.add((claim[0], claim[2]))
            for implied in claim[3]:
                self.supported.add((claim[0], implied))
        gender = (facts.gender or "").lower()
        implied = {"men": {"men", "him"}, "boys": {"boys", "kids", "him"}, "women": {"women", "her"},
                   "girls": {"girls", "kids", "her"}, "unisex": {"men", "women", "unisex", "him", "her"}}
        for key in implied.get(gender, set()):
            self.supported.add(("gender", key))
        if ("gender", "men") in self.supported:
            self.supported.add(("gender", "him"))
        if ("gender", "women") in self.supported:
            self.supported.add(("gender", "her"))
        self.numbers = {_normalise_number(m.group(0)) for m in _NUMBER.finditer(evidence)}
        if facts.price is not None:
            self.numbers.add(f"{facts.price:g}")
        self.size_letters = set(_SIZE_LETTERS.findall(evidence))
        self.evidence = evidence
        self.catalog_terms = set(words(evidence)) | set(quantities(evidence))
        self.printed_terms = set(words(" ".join(facts.printed))) | set(quantities(" ".join(facts.printed)))
        self.printed_names = {fold(n) for n in facts.printed_names}

    def supports(self, kind: str, key: str) -> bool:
        return (kind, key) in self.supported


def _known(term: str, terms: set[str]) -> bool:
    """`term` or its singular/plural ("oats" / "oat") is in `terms`."""
    return bool({term, term.rstrip("s"), term + "s"} & terms)


def _printed_claims(text: str, index: FactIndex) -> list[Claim]:
    """Sentences that say what the package reads: supported only by names read on it that the catalog gives."""
    claims = []
    for m in _PRINTED.finditer(text):
        group = 1 if m.group(1) is not None else 2
        named = words(m.group(group))
        if not named:
            continue
        ok = all(any(one_misread(w, n) for n in index.printed_names) for w in named)
        reason = "" if ok else (f"{m.group(group)!r} is printed on the package but is not a name the catalog gives"
                                if all(_known(w, index.printed_terms) for w in named)
                                else f"{m.group(group)!r} was not read on the package")
        claims.append(Claim("printed", m.group(group), " ".join(named), m.start(group), m.end(group), ok, reason))
    return claims


def _composition_claims(text: str, index: FactIndex) -> list[Claim]:
    """What-it-is-made-of claims that rest on printed words: unsupported unless the catalog states them too."""
    claims = []
    for m in _COMPOSITION.finditer(text):
        terms = [t for t in words(m.group(1)) + quantities(m.group(1)) if t not in _FILLER]
        if not any(_known(t, index.printed_terms) for t in terms):
            continue  # not drawn from the package: the lexicon's material and number checks judge it
        missing = [t for t in terms if not _known(t, index.catalog_terms)]
        printed_only = [t for t in missing if _known(t, index.printed_terms)]
        reason = "" if not missing else (
            f"{m.group(0)!r}: {', '.join(printed_only)} only printed on the package, not in the catalog's facts"
            if printed_only else f"{m.group(0)!r}: {', '.join(missing)} not in the product's facts")
        claims.append(Claim("composition", m.group(0), " ".join(terms), m.start(), m.end(), not missing, reason))
    return claims


def _raw_claims(text: str, brands: frozenset[str]) -> list[tuple[str, str, str, tuple[str, ...], int, int]]:
    """(kind, text, key, implied, start, end) of every lexicon match, longest match winning overlaps."""
    found = []
    for kind, pattern, key, implied in lexicon():
        for m in pattern.finditer(text):
            found.append((kind, m.group(0), key, implied, m.start(), m.end()))
    brand_re = _brand_pattern_cached(brands)
    if brand_re is not None:
        for m in brand_re.finditer(text):
            found.append(("brand", m.group(0), m.group(0).lower(), (), m.start(), m.end()))
    found.sort(key=lambda c: (c[4], -(c[5] - c[4])))
    kept, end = [], -1
    for claim in found:
        if claim[4] >= end:
            kept.append(claim)
            end = claim[5]
    return kept


def _in_styling_context(text: str, start: int) -> bool:
    sentence_start = max(text.rfind(mark, 0, start) for mark in ".!?\n;")
    return bool(_STYLING_CUE.search(text[sentence_start + 1:start]))


def extract_claims(text: str, index: FactIndex) -> list[Claim]:
    """Every checkable claim in `text`, each marked supported or not (with the reason)."""
    claims: list[Claim] = []
    covered: list[tuple[int, int]] = []
    for kind, surface, key, _implied, start, end in _raw_claims(text, index.brands):
        covered.append((start, end))
        if kind == "brand":
            ok = index.supports("brand", key)
            reason = "" if ok else f"brand {surface!r} is not this product's brand ({index.facts.brand or 'none'})"
        elif kind in _STYLING_KINDS and not index.supports(kind, key) and _in_styling_context(text, start):
            continue  # "pair it with jeans" suggests another product, it does not describe this one
        elif kind == "size":
            number = re.search(r"\d+(?:\.\d+)?", surface)
            ok = index.supports(kind, key) or (number is not None and _normalise_number(number.group(0))
                                              in index.numbers and "size" in index.evidence.lower())
            reason = "" if ok else f"size {surface!r} is not in the product's facts"
        else:
            ok = index.supports(kind, key)
            reason = "" if ok else f"{kind} {surface!r} is not in the product's facts"
        claims.append(Claim(kind, surface, key, start, end, ok, reason))
    for claim in _printed_claims(text, index) + _composition_claims(text, index):
        covered.append((claim.start, claim.end))
        claims.append(claim)
    for m in _NUMBER.finditer(text):
        if any(s <= m.start() < e for s, e in covered):
            continue
        value = _normalise_number(m.group(0))
        ok = value in index.numbers
        claims.append(Claim("number", m.group(0), value, m.start(), m.end(), ok,
                            "" if ok else f"number {m.group(0)!r} is not in the product's facts"))
    for m in _SIZE_LETTERS.finditer(text):
        if any(s <= m.start() < e for s, e in covered):
            continue
        ok = m.group(0) in index.size_letters
        claims.append(Claim("size", m.group(0), m.group(0), m.start(), m.end(), ok,
                            "" if ok else f"size {m.group(0)!r} is not in the product's facts"))
    return sorted(claims, key=lambda c: c.start)


def unsupported(text: str, index: FactIndex) -> list[Claim]:
    """The claims in `text` the facts do not support."""
    return [c for c in extract_claims(text, index) if not c.supported]


def sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) spans of the sentences (and blank-line breaks) of `text`."""
    spans, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        spans.append((start, m.end()))
        start = m.end()
    if start < len(text):
        spans.append((start, len(text)))
    return spans


def without_sentences(text: str, positions: list[int]) -> str:
    """`text` without the sentences that hold any of `positions` (character offsets), spaces tidied."""
    kept = [text[s:e] for s, e in sentences(text) if not any(s <= pos < e for pos in positions)]
    return re.sub(r"[ \t]+", " ", "".join(kept)).strip()


def remove_unsupported(text: str, claims: list[Claim]) -> tuple[str, list[Claim]]:
    """`text` without the sentences that carry an unsupported claim; the claims come back marked 'removed'."""
    bad = [c for c in claims if not c.supported]
    if not bad:
        return text, claims
    cleaned = without_sentences(text, [c.start for c in bad])
    marked = [Claim(**{**asdict(c), "action": "removed"}) if not c.supported else c for c in claims]
    return cleaned, marked
