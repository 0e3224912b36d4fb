#!/usr/bin/env bash
# `make demo`: index a Myntra demo catalog into $DEMO_HOME (SQLite + local index files) and serve the web app.
# A second run finds every product unchanged, skips the embedding work and serves within seconds.
set -uo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared}
DEMO_HOME=${DEMO_HOME:-.shoplens}
DEMO_N=${DEMO_N:-2500}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
MYNTRA="$SHARED/datasets/myntra_fashion"
CATALOG="$DEMO_HOME/demo/products.csv"
SL=(.venv/bin/shoplens --home "$DEMO_HOME")

[ -f "$MYNTRA/products.csv" ] || { echo "error: $MYNTRA/products.csv not found; set SHARED=/path/to/shared" >&2; exit 1; }
[ -f "$CATALOG" ] || .venv/bin/python scripts/demo_catalog.py --source "$MYNTRA/products.csv" --out "$CATALOG" --n "$DEMO_N" || exit 1

"${SL[@]}" index "$CATALOG" --images-root "$MYNTRA" \
  --map 'image=image_hr,thumbs_60x80.zip#{thumb_60x80}' \
  --map 'title=title,{brand} {variant_name}' \
  --map 'category=master_category>sub_category>article_type' \
  --map colour=base_colour --map 'price=discounted_price_inr,price_inr'
rc=$?
# 3 = finished with some rows rejected (listed by `shoplens index --errors`): the demo still serves.
if [ "$rc" -ne 0 ] && [ "$rc" -ne 3 ]; then exit "$rc"; fi
echo "ShopLens demo: http://$HOST:$PORT"
exec "${SL[@]}" serve --host "$HOST" --port "$PORT"
