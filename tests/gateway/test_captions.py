"""WebVTT from a speech result's segments: cue timing at every scale, and text that cannot break a cue."""

from __future__ import annotations

from gateway.captions import timestamp, webvtt
from tts_api.results import SegmentTiming


def test_timestamps_carry_hours_minutes_seconds_and_milliseconds() -> None:
    assert timestamp(0) == "00:00:00.000"
    assert timestamp(1.2344) == "00:00:01.234"
    assert timestamp(3725.5) == "01:02:05.500"


def test_each_segment_is_one_cue_and_its_text_cannot_end_or_style_the_cue() -> None:
    text = webvtt(
        [
            SegmentTiming(text="Hello <b>there</b> & you", start=0.0, end=1.5),
            SegmentTiming(text="line one\n\nline --> two", start=1.62, end=3.0),
            SegmentTiming(text="   ", start=3.1, end=3.2),
        ]
    )
    assert text.startswith("WEBVTT\n\n1\n00:00:00.000 --> 00:00:01.500\n")
    assert "Hello &lt;b&gt;there&lt;/b&gt; &amp; you\n" in text
    assert "2\n00:00:01.620 --> 00:00:03.000\nline one line --&gt; two\n" in text
    assert text.count(" --> ") == 3  # the one in the text was escaped
    assert "3\n00:00:03.100 --> 00:00:03.200\n…\n" in text
    assert webvtt([]) == "WEBVTT\n\n"
