"""Grounded product copy: a language model writes from the product's facts, a checker removes what it invents."""
