"""Small, deterministic text helpers shared by the offline provider."""

from __future__ import annotations

import hashlib
import re
from collections import Counter

_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_STOPWORD_TEXT = """
    a about above after again against all also an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers him his how i if in into is it its itself just me more
    most my no nor not now of off on once only or other our out over own same she should so some
    such than that the their them then there these they this those through to too under until up
    very was we were mention mentions explain explains state states describe describes
    what when where which while who whom why will with would you your yours
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def keywords(text: str) -> list[str]:
    """Content words of `text` (no stopwords, at least 3 letters), in first-seen order."""
    seen: dict[str, None] = {}
    for word in words(text):
        if len(word) >= 3 and word not in STOPWORDS and not word.isdigit():
            seen.setdefault(word, None)
    return list(seen)


def ranked_keywords(text: str) -> list[str]:
    """Keywords by frequency, then length, then alphabetically: stable for equal input."""
    counts = Counter(word for word in words(text) if word in set(keywords(text)))
    return sorted(counts, key=lambda word: (-counts[word], -len(word), word))


def sentences(text: str) -> list[str]:
    return [part.strip() for part in _SENTENCE_END.split(text) if len(words(part)) >= 3]


def stable_hash(*parts: object) -> int:
    """A hash that, unlike `hash()`, is the same in every process."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big")
