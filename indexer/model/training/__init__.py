"""Training the `shoplens-lite` heads (locked-image tuning): cached tower features, the image–text pairs, the
recipe, the model card and the quality table. Inference (`indexer.model.encoder`) never imports this package."""
