"""ShopLens web: the Flask API and pages, the copywriter workflow, and the `shoplens` command line."""
