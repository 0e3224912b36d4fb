"""Ranking: plain functions from a query to a ranking over one index version (`search.state.IndexState`).

`text` ranks words (BM25, vectors, or both fused by `search.fusion`), `photo` a photo with or without words,
`similar` the look-alikes of a product, and `floors` decides which scores are good enough to keep. None of them
pages, counts facets or times itself: `search.engine.SearchEngine` routes a query to one of them and does that.
"""
