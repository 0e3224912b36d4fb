"""Questions and captions: a shopper's question about a product (or a photo) answered from the catalog's facts, a
zero-shot visual read of the photo with the index's own encoder, or the text read on the product; captions built
from the same reads."""
