"""Where a run's time went: named phases, a table at the end of the run, ``timings_s`` in eval_results.json.

A run starts one ``Stopwatch``; while it runs, any module marks a phase with one line, without being handed the
stopwatch (outside a run ``phase`` times nothing, so library code can carry it):

    from vlm_dpo.training.timing import phase
    with phase("report: answers"):
        answers = generate_answers(...)

A phase inside another counts in its own row only, the outer row keeps the rest of its time, and a phase entered
twice adds up; so the rows and "other" (time in no phase) add up to the total.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

_current: Stopwatch | None = None  # the stopwatch that ``phase`` records into


class Stopwatch:
    """Seconds per named phase of one run, in the order the phases first started."""

    def __init__(self):
        self.phases: dict[str, float] = {}
        self._open: list[list] = []  # [seconds of phases nested in it] per open phase, innermost last
        self._start = self._end = None

    def start(self) -> Stopwatch:
        """Start the clock and make this the stopwatch that ``phase`` records into."""
        global _current
        self._start, _current = time.perf_counter(), self
        return self

    def stop(self) -> None:
        global _current
        self._end = time.perf_counter()
        if _current is self:
            _current = None

    @contextmanager
    def phase(self, name: str):
        start, nested = time.perf_counter(), [0.0]
        self.phases.setdefault(name, 0.0)
        self._open.append(nested)
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            self._open.pop()
            self.phases[name] += elapsed - nested[0]
            if self._open:
                self._open[-1][0] += elapsed

    def total(self) -> float:
        if self._start is None:
            return sum(self.phases.values())
        return (self._end or time.perf_counter()) - self._start

    def seconds(self) -> dict[str, float]:
        """Each phase, "other" and "total", in seconds (0.01 s), as eval_results.json's ``timings_s`` holds them."""
        total = self.total()
        rows = {**self.phases, "other": max(total - sum(self.phases.values()), 0.0), "total": total}
        return {name: round(value, 2) for name, value in rows.items()}

    def table(self) -> str:
        """The phases as a short text table: seconds, minutes and share of the total."""
        rows = self.seconds()
        total = rows["total"] or 1.0
        header = "where the time went"
        width = max(len(name) for name in [header, *rows])
        lines = [f"{header:<{width}}  {'seconds':>9}  {'min':>6}  {'share':>6}"]
        for name, value in rows.items():
            lines.append(f"{name:<{width}}  {value:>9.1f}  {value / 60:>6.1f}  {100 * value / total:>5.1f}%")
        return "\n".join(lines)


@contextmanager
def phase(name: str):
    """Time the block as phase ``name`` of the running stopwatch; nothing when none runs."""
    if _current is None:
        yield
    else:
        with _current.phase(name):
            yield
