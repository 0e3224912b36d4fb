"""Search in any language (issue #15): hybrid text search with and without the multilingual vectors.

    python bench/multilingual.py [--myntra-home HOME] [--grocery-home HOME] [--sweep] [--json OUT]

(a) The grocery catalog's `store_title` column (the store's own, partly Swedish titles: "Mellanmjölk Ekologisk",
    "Havredryck Berikad Färsk") as queries against the English catalog: products.csv without `store_title` and
    `information` (which repeats it), indexed into --grocery-home; the relevant product is the title's own.
    Recall@1 / @10 and MRR@10, over all titles and over the foreign ones (a word BM25 does not know).
(b) A query set written here in English, Swedish, Spanish, German, French and Hindi: article type x colour x gender
    over the Myntra home (default: the `make eval-report` demo home, 2,500 products), relevant = the products with
    those three attributes. nDCG@10 per language, with and without the multilingual vectors.
(c) The README evaluation table's English Myntra rows (title and attribute queries, `make eval-report`'s sets and
    seeds) in hybrid mode, with and without them.
Held out: every figure is on the odd half (grocery: odd product id; Myntra: odd-positioned attribute combinations;
(c) is untouched by tuning). `--sweep` scores the weight / margin grid on the even halves, where the defaults
(`SearchSettings.multilingual_*`) were chosen. Query latency: each query's first run (no cached encodings), one
torch / FAISS thread, with the load average printed beside it.
"""
from __future__ import annotations

import argparse
import csv
import itertools
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eval_report import GROCERY, GROCERY_MAP, build_sets, ensure_myntra, maps, shoplens  # noqa: E402

log = logging.getLogger("multilingual")

# Article types, colours and genders of the Myntra demo home with at least 4 products each (32 combinations).
COMBOS = [("Shirts", "Blue", "Men"), ("Tshirts", "White", "Men"), ("Shirts", "White", "Men"),
          ("Tshirts", "Black", "Men"), ("Watches", "Black", "Men"), ("Formal Shoes", "Black", "Men"),
          ("Jeans", "Blue", "Men"), ("Tshirts", "Grey", "Men"), ("Shirts", "Red", "Men"),
          ("Sports Shoes", "White", "Men"), ("Casual Shoes", "Brown", "Men"), ("Tshirts", "Green", "Men"),
          ("Kurtas", "White", "Women"), ("Sandals", "Black", "Men"), ("Tops", "Black", "Women"),
          ("Kurtas", "Green", "Women"), ("Tshirts", "White", "Women"), ("Tops", "Pink", "Women"),
          ("Jeans", "Blue", "Women"), ("Handbags", "Brown", "Women"), ("Kurtas", "Blue", "Women"),
          ("Tshirts", "Black", "Women"), ("Handbags", "Black", "Women"), ("Trousers", "Black", "Men"),
          ("Sports Shoes", "White", "Women"), ("Watches", "Black", "Women"), ("Heels", "Black", "Women"),
          ("Wallets", "Black", "Men"), ("Belts", "Brown", "Men"), ("Skirts", "Blue", "Women"),
          ("Tops", "Red", "Women"), ("Flip Flops", "Blue", "Men")]
# Per language: each type's noun and its agreement class, colour forms per class, and the phrase.
NOUNS = {
    "en": {"Shirts": ("shirt", ""), "Tshirts": ("t-shirt", ""), "Watches": ("watch", ""),
           "Formal Shoes": ("formal shoes", ""), "Jeans": ("jeans", ""), "Sports Shoes": ("sports shoes", ""),
           "Casual Shoes": ("casual shoes", ""), "Kurtas": ("kurta", ""), "Sandals": ("sandals", ""),
           "Tops": ("top", ""), "Handbags": ("handbag", ""), "Trousers": ("trousers", ""), "Heels": ("heels", ""),
           "Wallets": ("wallet", ""), "Belts": ("belt", ""), "Skirts": ("skirt", ""), "Flip Flops": ("flip flops", "")},
    "sv": {"Shirts": ("skjorta", "c"), "Tshirts": ("t-shirt", "c"), "Watches": ("armbandsur", "n"),
           "Formal Shoes": ("finskor", "p"), "Jeans": ("jeans", "p"), "Sports Shoes": ("sportskor", "p"),
           "Casual Shoes": ("fritidsskor", "p"), "Kurtas": ("kurta", "c"), "Sandals": ("sandaler", "p"),
           "Tops": ("topp", "c"), "Handbags": ("handväska", "c"), "Trousers": ("byxor", "p"),
           "Heels": ("klackskor", "p"), "Wallets": ("plånbok", "c"), "Belts": ("bälte", "n"),
           "Skirts": ("kjol", "c"), "Flip Flops": ("flipflops", "p")},
    "es": {"Shirts": ("camisa", "f"), "Tshirts": ("camiseta", "f"), "Watches": ("reloj", "m"),
           "Formal Shoes": ("zapatos de vestir", "mp"), "Jeans": ("vaqueros", "mp"),
           "Sports Shoes": ("zapatillas deportivas", "fp"), "Casual Shoes": ("zapatos casuales", "mp"),
           "Kurtas": ("kurta", "f"), "Sandals": ("sandalias", "fp"), "Tops": ("top", "m"),
           "Handbags": ("bolso", "m"), "Trousers": ("pantalones", "mp"), "Heels": ("tacones", "mp"),
           "Wallets": ("cartera", "f"), "Belts": ("cinturón", "m"), "Skirts": ("falda", "f"),
           "Flip Flops": ("chanclas", "fp")},
    "de": {"Shirts": ("Hemd", "n"), "Tshirts": ("T-Shirt", "n"), "Watches": ("Armbanduhr", "f"),
           "Formal Shoes": ("Anzugschuhe", "p"), "Jeans": ("Jeans", "p"), "Sports Shoes": ("Sportschuhe", "p"),
           "Casual Shoes": ("Freizeitschuhe", "p"), "Kurtas": ("Kurta", "f"), "Sandals": ("Sandalen", "p"),
           "Tops": ("Top", "n"), "Handbags": ("Handtasche", "f"), "Trousers": ("Hose", "f"),
           "Heels": ("Absatzschuhe", "p"), "Wallets": ("Geldbörse", "f"), "Belts": ("Gürtel", "m"),
           "Skirts": ("Rock", "m"), "Flip Flops": ("Zehentrenner", "p")},
    "fr": {"Shirts": ("chemise", "f"), "Tshirts": ("t-shirt", "m"), "Watches": ("montre", "f"),
           "Formal Shoes": ("chaussures de ville", "fp"), "Jeans": ("jean", "m"),
           "Sports Shoes": ("chaussures de sport", "fp"), "Casual Shoes": ("chaussures décontractées", "fp"),
           "Kurtas": ("kurta", "f"), "Sandals": ("sandales", "fp"), "Tops": ("haut", "m"),
           "Handbags": ("sac à main", "m"), "Trousers": ("pantalon", "m"), "Heels": ("talons", "mp"),
           "Wallets": ("portefeuille", "m"), "Belts": ("ceinture", "f"), "Skirts": ("jupe", "f"),
           "Flip Flops": ("tongs", "fp")},
    "hi": {"Shirts": ("शर्ट", "f"), "Tshirts": ("टी-शर्ट", "f"), "Watches": ("घड़ी", "f"),
           "Formal Shoes": ("फॉर्मल जूते", "mp"), "Jeans": ("जींस", "f"), "Sports Shoes": ("स्पोर्ट्स जूते", "mp"),
           "Casual Shoes": ("कैज़ुअल जूते", "mp"), "Kurtas": ("कुर्ता", "m"), "Sandals": ("सैंडल", "mp"),
           "Tops": ("टॉप", "m"), "Handbags": ("हैंडबैग", "m"), "Trousers": ("पतलून", "f"),
           "Heels": ("हील वाली सैंडल", "f"), "Wallets": ("बटुआ", "m"), "Belts": ("बेल्ट", "f"),
           "Skirts": ("स्कर्ट", "f"), "Flip Flops": ("चप्पल", "f")},
}
COLOURS = {
    "en": {c: {"": c.lower()} for c in ("Blue", "White", "Black", "Grey", "Red", "Green", "Brown", "Pink")},
    "sv": {"Blue": {"c": "blå", "n": "blått", "p": "blå"}, "White": {"c": "vit", "n": "vitt", "p": "vita"},
           "Black": {"c": "svart", "n": "svart", "p": "svarta"}, "Grey": {"c": "grå", "n": "grått", "p": "grå"},
           "Red": {"c": "röd", "n": "rött", "p": "röda"}, "Green": {"c": "grön", "n": "grönt", "p": "gröna"},
           "Brown": {"c": "brun", "n": "brunt", "p": "bruna"}, "Pink": {"c": "rosa", "n": "rosa", "p": "rosa"}},
    "es": {"Blue": {"m": "azul", "f": "azul", "mp": "azules", "fp": "azules"},
           "White": {"m": "blanco", "f": "blanca", "mp": "blancos", "fp": "blancas"},
           "Black": {"m": "negro", "f": "negra", "mp": "negros", "fp": "negras"},
           "Grey": {"m": "gris", "f": "gris", "mp": "grises", "fp": "grises"},
           "Red": {"m": "rojo", "f": "roja", "mp": "rojos", "fp": "rojas"},
           "Green": {"m": "verde", "f": "verde", "mp": "verdes", "fp": "verdes"},
           "Brown": {"m": "marrón", "f": "marrón", "mp": "marrones", "fp": "marrones"},
           "Pink": {"m": "rosa", "f": "rosa", "mp": "rosas", "fp": "rosas"}},
    "de": {c: {"m": f"{s}er", "f": f"{s}e", "n": f"{s}es", "p": f"{s}e"} for c, s in
           (("Blue", "blau"), ("White", "weiß"), ("Black", "schwarz"), ("Grey", "grau"), ("Red", "rot"),
            ("Green", "grün"), ("Brown", "braun"))} | {"Pink": {g: "rosa" for g in "mfnp"}},
    "fr": {"Blue": {"m": "bleu", "f": "bleue", "mp": "bleus", "fp": "bleues"},
           "White": {"m": "blanc", "f": "blanche", "mp": "blancs", "fp": "blanches"},
           "Black": {"m": "noir", "f": "noire", "mp": "noirs", "fp": "noires"},
           "Grey": {"m": "gris", "f": "grise", "mp": "gris", "fp": "grises"},
           "Red": {"m": "rouge", "f": "rouge", "mp": "rouges", "fp": "rouges"},
           "Green": {"m": "vert", "f": "verte", "mp": "verts", "fp": "vertes"},
           "Brown": {g: "marron" for g in ("m", "f", "mp", "fp")},
           "Pink": {"m": "rose", "f": "rose", "mp": "roses", "fp": "roses"}},
    "hi": {"Blue": {"m": "नीला", "f": "नीली", "mp": "नीले"}, "White": {g: "सफ़ेद" for g in ("m", "f", "mp")},
           "Black": {"m": "काला", "f": "काली", "mp": "काले"}, "Grey": {g: "स्लेटी" for g in ("m", "f", "mp")},
           "Red": {g: "लाल" for g in ("m", "f", "mp")}, "Green": {"m": "हरा", "f": "हरी", "mp": "हरे"},
           "Brown": {"m": "भूरा", "f": "भूरी", "mp": "भूरे"}, "Pink": {g: "गुलाबी" for g in ("m", "f", "mp")}},
}
PHRASES = {"en": "{colour} {noun} for {gender}", "sv": "{colour} {noun} för {gender}",
           "es": "{noun} {colour} para {gender}", "de": "{colour} {noun} für {gender}",
           "fr": "{noun} {colour} pour {gender}", "hi": "{gender} {colour} {noun}"}
GENDERS = {"en": {"Men": "men", "Women": "women"}, "sv": {"Men": "män", "Women": "kvinnor"},
           "es": {"Men": "hombre", "Women": "mujer"}, "de": {"Men": "Herren", "Women": "Damen"},
           "fr": {"Men": "homme", "Women": "femme"}, "hi": {"Men": "पुरुषों के लिए", "Women": "महिलाओं के लिए"}}
LANGUAGES = tuple(PHRASES)
# The configurations compared: without the multilingual vectors (today's hybrid), and with them.
WITHOUT = {"multilingual_weight": 0.0, "multilingual_foreign_weight": 0.0}


def phrase(lang: str, article: str, colour: str, gender: str) -> str:
    noun, agreement = NOUNS[lang][article]
    return PHRASES[lang].format(colour=COLOURS[lang][colour][agreement], noun=noun, gender=GENDERS[lang][gender])


def english_grocery(out: Path) -> Path:
    """products.csv without the store's titles (`store_title`, and `information`, which repeats them)."""
    with open(GROCERY, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        fields = [f for f in reader.fieldnames or [] if f not in ("store_title", "information")]
    for row in rows:
        row["iconic_image_path"] = str(GROCERY.parent / row["iconic_image_path"])
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return out


def grocery_queries() -> list[dict]:
    with open(GROCERY, newline="", encoding="utf-8") as fh:
        return [{"id": f"g{r['product_id']}", "text": r["store_title"], "relevant": {r["product_id"]: 1},
                 "tune": int(r["product_id"]) % 2 == 0} for r in csv.DictReader(fh) if r["store_title"]]


def myntra_queries(catalog: Path) -> list[dict]:
    """Every combination in every language, with the products of the home's catalog that have its attributes."""
    relevant: dict[tuple, dict[str, int]] = {c: {} for c in COMBOS}
    with open(catalog, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            key = (row["article_type"], row["base_colour"], row["gender"])
            if key in relevant:
                relevant[key][row["id"]] = 1
    return [{"id": f"m{i}-{lang}", "lang": lang, "text": phrase(lang, *combo), "relevant": relevant[combo],
             "tune": i % 2 == 0} for i, combo in enumerate(COMBOS) for lang in LANGUAGES]


class Runner:
    """Runs queries on one home under a search configuration, as `shoplens eval` does (no collapsing)."""

    def __init__(self, home: Path) -> None:
        from indexer.config import load_settings

        self.settings = load_settings(home=home)

    def run(self, queries: list[dict], overrides: dict, *, timed: bool = False) -> tuple[dict, list[float]]:
        from search.engine import SearchEngine
        from search.query import Query
        from search.ranking import text as text_ranking

        engine = SearchEngine(self.settings, self.settings.search.updated(overrides))
        runs, times = {}, []
        for q in queries:
            if timed:  # each query's first run: its encodings are not cached yet
                text_ranking._encode_text.cache_clear()
                text_ranking._encode_multilingual.cache_clear()
            started = time.perf_counter()
            result = engine.search(Query(text=q["text"], k=50, collapse=False))
            times.append((time.perf_counter() - started) * 1000)
            runs[q["id"]] = [(h.product.id, h.score) for h in result.hits]
        return runs, times


def scores(queries: list[dict], run: dict) -> dict:
    from search.evaluation.metrics import mean_scores, per_query_scores

    qrels = {q["id"]: q["relevant"] for q in queries}
    return mean_scores(per_query_scores(qrels, run, ("recall@1", "recall@10", "mrr@10", "ndcg@10")))


def grocery_figures(runner: Runner, queries: list[dict], overrides: dict) -> dict:
    run, _ = runner.run(queries, overrides)
    foreign = [q for q in queries if q["foreign"]]
    return {"all": scores(queries, run), "foreign": scores(foreign, run), "n": len(queries), "n_foreign": len(foreign)}


def myntra_figures(runner: Runner, queries: list[dict], overrides: dict) -> dict:
    run, _ = runner.run(queries, overrides)
    return {lang: scores([q for q in queries if q["lang"] == lang], run)["ndcg@10"] for lang in LANGUAGES}


def sweep(grocery: Runner, g_tune: list[dict], myntra: Runner, m_tune: list[dict]) -> list[dict]:
    """The grid on the tuning halves: grocery MRR@10 (foreign titles) and Myntra nDCG@10 (foreign languages,
    and English, which must not drop)."""
    rows = []
    for weight, foreign, margin in itertools.product((0.0, 0.1, 0.2), (0.5, 0.7, 0.9), (0.04, 0.08, 0.12)):
        cfg = {"multilingual_weight": weight, "multilingual_foreign_weight": foreign, "multilingual_margin": margin}
        g = grocery_figures(grocery, g_tune, cfg)
        m = myntra_figures(myntra, m_tune, cfg)
        rows.append({**cfg, "grocery_mrr_foreign": round(g["foreign"]["mrr@10"], 3),
                     "myntra_ndcg_en": round(m["en"], 3),
                     "myntra_ndcg_other": round(statistics.mean(m[lang] for lang in LANGUAGES if lang != "en"), 3)})
        log.info("sweep %s", rows[-1])
    return rows


def english_rows(myntra_home: Path, catalog: Path, out: Path) -> dict:
    """The eval-report Myntra title and attribute sets (its seeds and sizes) in hybrid mode, without and with."""
    from search.evaluation.trec import read_qrels, read_queries

    runner = Runner(myntra_home)
    figures = {}
    for label, _, queries_path, qrels_path in build_sets(out, catalog, myntra_home, None, None, 500, 300, 0):
        queries = [{"id": q.id, "text": q.text, "relevant": {}} for q in read_queries(queries_path)]
        qrels = read_qrels(qrels_path)
        for q in queries:
            q["relevant"] = dict(qrels.get(q["id"], {}))
        for name, cfg in (("without", WITHOUT), ("with", {})):
            run, times = runner.run(queries, cfg, timed=True)
            figures[f"{label} / {name}"] = {**{k: round(v, 3) for k, v in scores(queries, run).items()},
                                            "p50_ms": round(statistics.median(times), 1), "n": len(queries)}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--myntra-home", type=Path, default=ROOT / "bench" / "out" / "eval-myntra-home")
    parser.add_argument("--myntra-catalog", type=Path, help="the catalog indexed in --myntra-home "
                        "(default: the make-demo catalog that bench/eval_report.py writes there)")
    parser.add_argument("--grocery-home", type=Path, default=ROOT / "bench" / "out" / "ml-grocery-home")
    parser.add_argument("--sweep", action="store_true", help="also score the weight grid on the tuning halves")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import faiss
    import torch

    torch.set_num_threads(1)  # as one server worker of two on two cores
    faiss.omp_set_num_threads(1)

    catalog = english_grocery(args.grocery_home / "catalog" / "products_en.csv")
    shoplens(args.grocery_home, "migrate")
    shoplens(args.grocery_home, "index", str(catalog), "--no-progress", "--read-text", "off", *maps(GROCERY_MAP))
    myntra_catalog = ensure_myntra(args.myntra_home, args.myntra_catalog, 2500)

    grocery, myntra = Runner(args.grocery_home), Runner(args.myntra_home)
    from search.engine import SearchEngine

    lexical = SearchEngine(grocery.settings).state().version.lexical()
    g_all = grocery_queries()
    for q in g_all:
        q["foreign"] = lexical.coverage(q["text"]) < 1.0
    m_all = myntra_queries(myntra_catalog)
    g_tune, g_test = [q for q in g_all if q["tune"]], [q for q in g_all if not q["tune"]]
    m_tune, m_test = [q for q in m_all if q["tune"]], [q for q in m_all if not q["tune"]]

    report: dict = {"load_average": os.getloadavg()}
    if args.sweep:
        report["sweep"] = sweep(grocery, g_tune, myntra, m_tune)
    report["grocery"] = {name: grocery_figures(grocery, g_test, cfg) for name, cfg in
                         (("lexical", {"text_mode": "lexical"}), ("without", WITHOUT), ("with", {}))}
    report["myntra"] = {name: myntra_figures(myntra, m_test, cfg) for name, cfg in
                        (("lexical", {"text_mode": "lexical"}), ("without", WITHOUT), ("with", {}))}
    _, t_without = myntra.run(m_test, WITHOUT, timed=True)
    _, t_with = myntra.run(m_test, {}, timed=True)
    report["myntra_latency_ms"] = {"without_p50": round(statistics.median(t_without), 1),
                                   "with_p50": round(statistics.median(t_with), 1)}
    report["english"] = english_rows(args.myntra_home, myntra_catalog, args.myntra_home / "ml-eval")
    report["load_average_end"] = os.getloadavg()
    text = json.dumps(report, indent=1, ensure_ascii=False)
    print(text)
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
