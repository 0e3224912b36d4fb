"""Reading the words printed on product images (OCR): the reader, and the word matching search uses.

`reader.TextReader` turns image bytes into a `Reading` (lines with text, confidence and box, and an outcome);
`words` turns readings into the words the lexical index and photo ranking match, tolerant of OCR misreads.
"""
from indexer.reading.reader import READER_VERSION, Reading, TextLine, TextReader, load_reader

__all__ = ["READER_VERSION", "Reading", "TextLine", "TextReader", "load_reader"]
