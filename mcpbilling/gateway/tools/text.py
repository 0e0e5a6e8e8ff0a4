"""``text_stats`` and ``hash_text``: counts and digests of a text."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from mcpbilling.gateway.registry import tool

MAX_TEXT_CHARS = 100_000
WORDS_PER_MINUTE = 238  # adult silent reading speed
WORD = re.compile(r"[^\W_]+(?:['\u2019-][^\W_]+)*")  # apostrophes and hyphens inside words
SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")

Text = Annotated[str, Field(max_length=MAX_TEXT_CHARS)]


class TextStats(BaseModel):
    characters: int
    characters_without_spaces: int
    words: int
    unique_words: int
    sentences: int
    lines: int
    paragraphs: int
    average_word_length: float
    reading_time_minutes: float
    top_words: list[tuple[str, int]]


@tool(price_cents="0.2", credits=1, timeout_s=5.0)
def text_stats(text: Text) -> TextStats:
    """Count a text's characters, words, unique words, sentences, lines and paragraphs;
    average word length, reading time and the ten most frequent words."""
    words = WORD.findall(text.lower())
    stripped = text.strip()
    return TextStats(
        characters=len(text),
        characters_without_spaces=sum(1 for char in text if not char.isspace()),
        words=len(words),
        unique_words=len(set(words)),
        sentences=len(SENTENCE_END.findall(stripped)) or (1 if words else 0),
        lines=len(text.splitlines()),
        paragraphs=len([block for block in re.split(r"\n\s*\n", stripped) if block.strip()]),
        average_word_length=round(sum(map(len, words)) / len(words), 2) if words else 0.0,
        reading_time_minutes=round(len(words) / WORDS_PER_MINUTE, 2),
        top_words=Counter(words).most_common(10),
    )


@tool(price_cents="0.05", credits=1, timeout_s=5.0)
def hash_text(
    text: Text,
    algorithm: Literal["md5", "sha1", "sha256", "sha512", "sha3_256", "blake2b"] = "sha256",
) -> str:
    """The hex digest of a text's UTF-8 bytes (sha256 unless another algorithm is named)."""
    return hashlib.new(algorithm, text.encode(), usedforsecurity=False).hexdigest()
