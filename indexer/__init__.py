"""ShopLens indexer: catalog ingestion, the encoder (CLIP-style models), the product store and FAISS index versions."""
