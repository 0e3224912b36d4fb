"""Prompts: the product's facts as a short list, plus the length and tone the merchandiser asked for.

A 135M model follows short, plain instructions best; everything it may mention is in the fact list, and the
instructions name the details it tends to invent (sizes, materials, other colours, numbers).
"""
from __future__ import annotations

from dataclasses import dataclass

from indexer.errors import BadInput
from web.copywriter.facts import CopyFacts

# length → (sentences asked for, max new tokens)
LENGTHS = {"short": (2, 60), "medium": (3, 100), "long": (5, 170)}
TONES = {
    "friendly": "warm and friendly",
    "professional": "clear and professional",
    "luxury": "elegant and premium",
    "playful": "fun and playful",
    "minimal": "plain and factual",
}
SYSTEM = "You are a copywriter for an online fashion store. Write in a {tone} tone, using only the facts given."


@dataclass(frozen=True)
class CopyOptions:
    """What to write: description length, tone, and whether bullets and an SEO title come with it."""

    length: str = "medium"
    tone: str = "friendly"
    bullets: bool = False
    seo_title: bool = True
    retries: int = 1  # regenerations of a description that still has unsupported claims
    temperature: float = 0.0  # 0 = greedy (reproducible); retries sample at max(temperature, 0.7)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.length not in LENGTHS:
            raise BadInput(f"unknown length {self.length!r}", hint=f"Use one of: {', '.join(LENGTHS)}.")
        if self.tone not in TONES:
            raise BadInput(f"unknown tone {self.tone!r}", hint=f"Use one of: {', '.join(TONES)}.")
        if not 0 <= self.retries <= 5:
            raise BadInput(f"retries must be 0-5, got {self.retries}")
        if not 0 <= self.temperature <= 2:
            raise BadInput(f"temperature must be between 0 and 2, got {self.temperature}")

    @property
    def max_new_tokens(self) -> int:
        return LENGTHS[self.length][1]

    @classmethod
    def from_json(cls, data: dict) -> "CopyOptions":
        """Options from a request body; unknown keys are refused so typos don't pass silently."""
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise BadInput(f"unknown option(s): {', '.join(sorted(unknown))}", hint=f"Known: {', '.join(sorted(known))}.")
        try:
            return cls(**data)
        except TypeError as exc:
            raise BadInput(f"bad options: {exc}") from exc


def fact_list(facts: CopyFacts) -> str:
    return "\n".join(f"- {label}: {value}" for label, value in facts.prompt_facts())


def _messages(facts: CopyFacts, options: CopyOptions, task: str) -> list[dict]:
    return [{"role": "system", "content": SYSTEM.format(tone=TONES[options.tone])},
            {"role": "user", "content": f"Facts:\n{fact_list(facts)}\n\n{task}"}]


def description_messages(facts: CopyFacts, options: CopyOptions) -> list[dict]:
    sentences = LENGTHS[options.length][0]
    return _messages(facts, options, f"Write a product description of {sentences} sentences for this product.")


def bullets_messages(facts: CopyFacts, options: CopyOptions) -> list[dict]:
    return _messages(facts, options, "Write 3 short bullet points about this product, one per line, "
                                     "each starting with '- '.")


def render(tokenizer, messages: list[dict]) -> str:
    """The chat prompt as text, ending where the assistant's answer starts."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return "\n\n".join(m["content"] for m in messages) + "\n\n"
