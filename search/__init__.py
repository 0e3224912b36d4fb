"""ShopLens search: text, photo, combined and similar-product queries over an index version, plus evaluation."""
