"""What reaches a terminal: text of received inputs (names, phases, units, paths) shown, never run.

An escape sequence in a store's name or attributes, a phase name or a scan's file name could
clear the screen, set the window's title, or erase and fake log lines; :func:`printable` shows
every control character as its escape (``\\x1b``), :class:`PrintableStream` does it for a whole
stream (the command line's stdout and stderr; the progress bars draw on one that keeps their
own codes)."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["printable", "PrintableStream", "raw_stream"]

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")  # all but tab and newline
# and the progress bars' own: carriage return, erase line (distributed's), cursor up (tqdm's)
_CONTROL_BUT_BARS = re.compile("\x1b(?!\\[(?:2K|A))|[\x00-\x08\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f-\x9f"
                               "\u202a-\u202e\u2066-\u2069]")


def printable(text: str, *, bars: bool = False) -> str:
    """``text`` safe for a terminal: control characters other than newline and tab, and the
    bidirectional overrides that reorder what is shown (U+202A-E, U+2066-9), shown as their
    escapes; with ``bars`` (the stream progress bars draw on) their carriage return, erase line
    and cursor up are kept."""
    return (_CONTROL_BUT_BARS if bars else _CONTROL).sub(lambda m: ascii(m.group())[1:-1], text)


class PrintableStream:
    """A text stream whose writes go through :func:`printable` (``bars``: keeping the bars' codes),
    the rest (``fileno``, ``isatty``, ``flush``, ...) to ``stream``."""

    def __init__(self, stream: Any, *, bars: bool = False) -> None:
        self.raw_stream, self._bars = stream, bars

    def write(self, text: str) -> int:
        self.raw_stream.write(printable(text, bars=self._bars))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw_stream, name)


def raw_stream(stream: Any) -> Any:
    """The stream under a :class:`PrintableStream` (else ``stream`` itself)."""
    return stream.raw_stream if isinstance(stream, PrintableStream) else stream
