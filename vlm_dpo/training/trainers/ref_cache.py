"""Reference log-probs of preference pairs, kept on disk across runs, and trusted only once they prove themselves.

A wrong cached value is worse than none: the run exits 0 and every loss, reward and margin is off, in this run and
every later one on the same base and data. So each line carries a checksum of its pair key and values, values must
be two finite floats, and anything else is dropped on reading, with a warning, and recomputed. A well-formed line
can still be stale (written by other code for the same key): ``FastDPOTrainer`` recomputes the first batch it would
serve from the file and compares (``agrees``); on a difference the whole file is discarded.
"""

import json
import logging
import math
import os
from pathlib import Path

import xxhash

logger = logging.getLogger(__name__)


def checksum(key: str, chosen: float, rejected: float) -> str:
    return xxhash.xxh3_64_hexdigest(json.dumps([key, chosen, rejected]).encode())


def parse(line: str) -> tuple[str, tuple[float, float]] | None:
    """One line's pair key and (chosen, rejected) log-probs, or None when it is malformed or fails its checksum."""
    try:
        entry = json.loads(line)
        key, chosen, rejected, check = entry["key"], entry["chosen"], entry["rejected"], entry["check"]
    except (ValueError, KeyError, TypeError):
        return None
    values = (chosen, rejected)
    if not isinstance(key, str) or not all(type(v) is float and math.isfinite(v) for v in values):
        return None
    return (key, values) if check == checksum(key, chosen, rejected) else None


def agrees(cached: list[tuple[float, float]], fresh: list[tuple[float, float]], tolerance: float) -> bool:
    """Cached and freshly computed log-probs of the same pairs agree within float noise (relative and absolute)."""
    return all(math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance)
               for old, new in zip(cached, fresh, strict=True) for a, b in zip(old, new, strict=True))


class RefLogpCache:
    """Reference log-probs per pair key, in memory and in an append-only JSON-lines file (processes of one run
    append their own pairs). ``loaded`` holds the keys read from the file: those still have to prove themselves."""

    def __init__(self, path: Path):
        self.path, self.values = path, {}
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        entries = [entry for line in lines if (entry := parse(line)) is not None]
        self.values.update(entries)
        self.loaded = set(self.values)
        if bad := len(lines) - len(entries):
            logger.warning("%s: %d of %d reference log-prob entries are malformed or fail their checksum (or were "
                           "cut short by a killed run); they will be recomputed.", path, bad, len(lines))
            self._rewrite()  # without them, so that the next run does not stumble on them again

    def get(self, keys: list[str]) -> list[tuple[float, float]] | None:
        """The values of every key, or None when any is missing."""
        values = [self.values.get(key) for key in keys]
        return None if None in values else values

    def _rewrite(self) -> None:
        tmp = self.path.with_name(f"{self.path.name}.tmp{os.getpid()}")
        tmp.write_text("".join(line + "\n" for line in self._lines(self.values)))
        os.replace(tmp, self.path)

    @staticmethod
    def _lines(values: dict[str, tuple[float, float]]) -> list[str]:
        return [json.dumps({"key": k, "chosen": c, "rejected": r, "check": checksum(k, c, r)})
                for k, (c, r) in values.items() if math.isfinite(c) and math.isfinite(r)]

    def put(self, entries: dict[str, tuple[float, float]]) -> None:
        """Remember and append ``entries``; non-finite values are used once but never written."""
        entries = {key: (float(c), float(r)) for key, (c, r) in entries.items()}
        self.values.update(entries)
        if lines := self._lines(entries):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as handle:
                handle.write("\n".join(lines) + "\n")

    def discard(self, why: str) -> None:
        logger.warning("Discarding the reference log-prob cache %s: %s. Recomputing them.", self.path, why)
        self.values.clear()
        self.loaded.clear()
        self.path.unlink(missing_ok=True)
