"""Prompts: the description's plan (web/copywriter/plan.py), style examples, the length and tone asked for.

A 135M model follows short, plain instructions best. A description's prompt gives the points to say as short
phrases in the order the plan chose (no field names to read out), and up to two of the catalog's own
descriptions of similar products as style (web/copywriter/style.py); bullets get the plain fact list.
"""
from __future__ import annotations

from dataclasses import dataclass

from indexer.errors import BadInput
from web.copywriter.facts import CopyFacts
from web.copywriter.plan import Point, plan_text
from web.copywriter.style import StyleExample

# length → (sentences asked for, max new tokens)
LENGTHS = {"short": (2, 60), "medium": (3, 100), "long": (5, 170)}
# length → the words a description should have (bench/generate.py measures the median against it)
TARGET_WORDS = {"short": 35, "medium": 60, "long": 100}
TONES = {
    "friendly": "warm and friendly",
    "professional": "clear and professional",
    "luxury": "elegant and premium",
    "playful": "fun and playful",
    "minimal": "plain and factual",
}
SYSTEM = "You are a copywriter for an online store. Write in a {tone} tone, using only the facts given."
MIN_SHARE = 0.8  # a description under this share of its target words is written up from the facts
RETRY_SHARE = 0.6  # under this share an attempt is a stub and the model writes again (costs a generation)


@dataclass(frozen=True)
class CopyOptions:
    """What to write: description length, tone, and whether bullets and an SEO title come with it."""

    length: str = "medium"
    tone: str = "friendly"
    bullets: bool = False
    seo_title: bool = True
    retries: int = 1  # regenerations of a description that still has unsupported claims or problems
    style_examples: int = 2  # the catalog's descriptions of similar products shown as style (0: none)
    temperature: float = 0.7  # sampled per product from `seed` (reproducible; 0 = greedy); retries at >= 0.7
    seed: int = 0

    def __post_init__(self) -> None:
        if self.length not in LENGTHS:
            raise BadInput(f"unknown length {self.length!r}", hint=f"Use one of: {', '.join(LENGTHS)}.")
        if self.tone not in TONES:
            raise BadInput(f"unknown tone {self.tone!r}", hint=f"Use one of: {', '.join(TONES)}.")
        if not 0 <= self.retries <= 5:
            raise BadInput(f"retries must be 0-5, got {self.retries}")
        if not 0 <= self.style_examples <= 3:
            raise BadInput(f"style_examples must be 0-3, got {self.style_examples}")
        if not 0 <= self.temperature <= 2:
            raise BadInput(f"temperature must be between 0 and 2, got {self.temperature}")

    @property
    def max_new_tokens(self) -> int:
        return LENGTHS[self.length][1]

    @property
    def target_words(self) -> int:
        return TARGET_WORDS[self.length]

    @property
    def min_words(self) -> int:
        """The length floor: shorter than this, a description is written up from the facts."""
        return round(MIN_SHARE * self.target_words)

    @property
    def retry_words(self) -> int:
        """Shorter than this, an attempt is regenerated rather than written up (the fill needs something to build on)."""
        return round(RETRY_SHARE * self.target_words)

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


def description_messages(facts: CopyFacts, options: CopyOptions, points: list[Point],
                         examples: list[StyleExample] = ()) -> list[dict]:
    """The plan's points in order, the style examples, and the length asked for."""
    sentences = LENGTHS[options.length][0]
    style = ""
    if examples:
        quoted = "\n".join(f'"{e.text}"' for e in examples)
        style = (f"\n\nHow this store describes similar products (copy the style, never their details):\n{quoted}")
    task = (f"Write a product description of {sentences} sentences (about {options.target_words} words) for "
            f"{facts.title}. Say these points in this order, as flowing sentences:\n{plan_text(points)}{style}")
    return [{"role": "system", "content": SYSTEM.format(tone=TONES[options.tone])},
            {"role": "user", "content": task}]


def bullets_messages(facts: CopyFacts, options: CopyOptions) -> list[dict]:
    return _messages(facts, options, "Write 3 short bullet points about this product, one per line, "
                                     "each starting with '- '.")


def render(tokenizer, messages: list[dict]) -> str:
    """The chat prompt as text, ending where the assistant's answer starts."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return "\n\n".join(m["content"] for m in messages) + "\n\n"
