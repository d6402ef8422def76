"""A speech result's segments as WebVTT captions: one cue per segment, in the audio's time."""

from __future__ import annotations

from tts_api.results import SegmentTiming


def timestamp(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def cue_text(text: str) -> str:
    """The text as a cue may hold it: no markup, no line that would end the cue."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return " ".join(escaped.split()) or "…"


def webvtt(segments: list[SegmentTiming]) -> str:
    cues = [
        f"{number}\n{timestamp(segment.start)} --> {timestamp(max(segment.end, segment.start))}\n"
        f"{cue_text(segment.text)}\n"
        for number, segment in enumerate(segments, start=1)
    ]
    return "WEBVTT\n\n" + "\n".join(cues)
