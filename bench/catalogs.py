"""The real datasets the benchmarks run on, and the `--map` options README.md documents for each (one place, so a
bench indexes a catalog exactly as a user would). Imported by the bench scripts, which run from this folder."""
from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
MYNTRA = DATA / "myntra_fashion"
GROCERY = DATA / "grocery_store"
IKEA = DATA / "ikea_interior"
MYNTRA_MAP = ["image=image_hr,thumbs_60x80.zip#{thumb_60x80}", "title=title,{brand} {variant_name}",
              "category=master_category>sub_category>article_type", "colour=base_colour",
              "price=discounted_price_inr,price_inr"]
GROCERY_MAP = ["id=product_id", "image=iconic_image_path", "category=top_category>coarse_class"]
IKEA_MAP = ["id=product_id", "image=image_path", "category=category_path"]
