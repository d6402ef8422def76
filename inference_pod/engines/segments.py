"""Splitting text into segments of roughly ``max_tokens`` tokens, at sentence and clause boundaries.

Token counts are approximate (one per CJK character, one per other word), close enough to honour
``max_text_tokens_per_segment`` on engines without IndexTTS2's own tokenizer.
"""

from __future__ import annotations

import itertools
import re

_SENTENCE_END = re.compile(r"(?<=[。！？!?；;\n])|(?<=[.])(?=\s)")
_CLAUSE_END = re.compile(r"(?<=[，,、：:])")
_TOKEN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]|[^\W\u3400-\u9fff\uf900-\ufaff]+")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def count_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


def has_cjk(text: str) -> bool:
    return _CJK.search(text) is not None


def _hard_split(text: str, max_tokens: int) -> list[str]:
    starts = [match.start() for match in _TOKEN.finditer(text)][::max_tokens]
    bounds = [0, *starts[1:], len(text)]
    return [text[begin:end] for begin, end in itertools.pairwise(bounds)]


def _pack(units: list[str], max_tokens: int) -> list[str]:
    segments: list[str] = []
    current = ""
    for unit in units:
        if current and count_tokens(current + unit) > max_tokens:
            segments.append(current)
            current = ""
        current += unit
    if current:
        segments.append(current)
    return segments


def split_segments(text: str, max_tokens: int, *, pack: bool = True) -> list[str]:
    """Segments, in order, none over ``max_tokens`` tokens; blank pieces dropped. ``pack``: short
    sentences share a segment up to ``max_tokens``; without it each sentence is its own (streamed
    speech: the first sentence is heard as soon as it is spoken)."""
    if max_tokens < 1:
        raise ValueError("max_tokens must be at least 1")
    units: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        if count_tokens(sentence) <= max_tokens:
            units.append(sentence)
            continue
        for clause in _CLAUSE_END.split(sentence):
            units.extend([clause] if count_tokens(clause) <= max_tokens else _hard_split(clause, max_tokens))
    packed = _pack(units, max_tokens) if pack else units
    return [segment.strip() for segment in packed if segment.strip()]
