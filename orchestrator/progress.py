"""A console progress line for work the driver waits on (extraction of a view).

Ray Data's own bars are per operator and vanish into logs when piped; a researcher wants one line
per view: done/total, rate, ETA. On a terminal the line redraws in place; on a pipe or file it is
printed every ``every_s`` seconds (30, as the sweep's status line; and once at the end), so logs
show progress without flooding (every 5 s, the 6-minute ASR pass of ``clasp_loss`` printed 39 lines).
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _fmt_s(s: float) -> str:
    s = max(0, int(round(s)))
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class Progress:
    def __init__(self, label: str, total: int, unit: str = "items", stream: TextIO | None = None,
                 every_s: float = 30.0) -> None:
        self.label, self.total, self.unit = label, int(total), unit
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every_s = 0.2 if self.tty else every_s
        self.done = 0
        self.t0 = time.perf_counter()
        self._last = -1e9
        self._shown = -1  # ``done`` when the line was last printed
        self._closed = False

    def line(self) -> str:
        el = time.perf_counter() - self.t0
        rate = self.done / el if el > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        pct = 100.0 * self.done / self.total if self.total else 100.0
        tail = f"ETA {_fmt_s(eta)}" if self.done < self.total and rate > 0 else f"{_fmt_s(el)}"
        return f"{self.label}: {self.done}/{self.total} {self.unit} ({pct:3.0f}%), {rate:.1f} {self.unit}/s, {tail}"

    def update(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self._last >= self.every_s:
            self._last = now
            self._emit()

    def _emit(self, final: bool = False) -> None:
        if not self.tty and self.done == self._shown:
            return
        self._shown = self.done
        if self.tty:
            self.stream.write("\r\x1b[2K" + self.line() + ("\n" if final else ""))
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._emit(final=True)
