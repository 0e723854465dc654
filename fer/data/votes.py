"""The FER+ crowd votes: ten people per FER2013 face, eight emotions plus 'unknown' and 'not a face'.

    python -m fer data ../shared/data/fer2013 --votes ../shared/data/ferplus/votes.csv

`votes.csv` has a row per file of a FER2013 folder (`file` is its path under
the folder, `ferplus_rows` the row(s) of the Kaggle CSV it is, so either form
of FER2013 can be matched), then the vote counts in FER+'s order. Each face
gets its votes over the product's eight emotions (`fer.EMOTIONS`); a face FER+
dropped (no votes) or whose top vote is 'unknown' or 'not a face' is not used
by FER+ training or evaluation. A face's crowd majority is the emotion with
strictly the most votes; a tie has none.

A file that does not match the data stops with a message naming the first bad
line: a wrong header, a count that is not a whole number, a face listed twice,
a face of the data it does not list.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer import EMOTIONS
from fer.data.fer2013 import DataError

# the vote columns of votes.csv, in FER+'s order, and the product's name for each
FERPLUS_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
FERPLUS_NAMES = {
    "neutral": "neutral",
    "happiness": "happy",
    "surprise": "surprise",
    "sadness": "sad",
    "anger": "angry",
    "disgust": "disgust",
    "fear": "fear",
    "contempt": "contempt",
}
OTHER_COLUMNS = ("unknown", "NF")
HEADER = ("file", "fer2013_label", "ferplus_rows", *FERPLUS_COLUMNS, *OTHER_COLUMNS)
DEFAULT_VOTES = Path("../shared/data/ferplus/votes.csv")
# votes.csv's columns in EMOTIONS order
_ORDER = [FERPLUS_COLUMNS.index(next(k for k, v in FERPLUS_NAMES.items() if v == e)) for e in EMOTIONS]


class VotesError(DataError):
    """The votes file does not fit the data; the message names the file, the line and what was expected."""


@dataclass
class Votes:
    counts: np.ndarray  # (N, 8) votes per emotion in EMOTIONS order, one row per face of the data set
    other: np.ndarray  # (N, 2) votes for 'unknown' and 'not a face'
    source: str

    @property
    def used(self) -> np.ndarray:
        """(N,) bool: faces FER+ training and evaluation use (voted on, and the top vote an emotion)."""
        top_emotion = self.counts.max(1)
        return (self.counts.sum(1) > 0) & (top_emotion >= self.other.max(1))

    @property
    def dropped(self) -> np.ndarray:
        """(N,) bool: faces FER+ dropped (no votes at all)."""
        return (self.counts.sum(1) + self.other.sum(1)) == 0

    def distribution(self) -> np.ndarray:
        """(N, 8) float32: each used face's votes over the eight emotions, summing to 1 (zeros where not used)."""
        total = self.counts.sum(1, keepdims=True)
        dist = np.divide(self.counts, total, out=np.zeros(self.counts.shape, np.float64), where=total > 0)
        return (dist * self.used[:, None]).astype(np.float32)

    def majority(self) -> np.ndarray:
        """(N,) int64: the emotion with strictly the most votes, -1 for ties and faces not used."""
        top = self.counts.max(1, keepdims=True)
        unique = (self.counts == top).sum(1) == 1
        return np.where(unique & self.used, self.counts.argmax(1), -1).astype(np.int64)

    def summary(self) -> str:
        used, maj = self.used, self.majority()
        return (
            f"FER+ votes from {self.source}: {int(used.sum())} faces used, {int(self.dropped.sum())} dropped by FER+, "
            f"{int((~used & ~self.dropped).sum())} with 'unknown' or 'not a face' on top; "
            f"{int((maj >= 0).sum())} with a strict majority ({int((used & (maj < 0)).sum())} ties)"
        )

    def subset(self, index) -> Votes:
        return Votes(self.counts[index], self.other[index], self.source)


def default_votes(data: str | Path) -> Path | None:
    """votes.csv beside a FER2013 folder (`<data>/../ferplus/votes.csv` or `<data>/votes.csv`), or the shared
    copy; None where there is none."""
    data = Path(data)
    for candidate in (data.parent / "ferplus" / "votes.csv", data / "votes.csv", DEFAULT_VOTES):
        if candidate.is_file():
            return candidate
    return None


def _parse(path: Path) -> dict[str, tuple[int, list[int], list[int]]]:
    """key -> (line number, 8 emotion counts in EMOTIONS order, [unknown, NF]); keys are file paths and 'row:N'."""
    text = path.read_bytes().decode("utf-8-sig", errors="replace")
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or tuple(c.strip() for c in header) != HEADER:
        got = ",".join(header) if header else "nothing"
        raise VotesError(f"{path}:1: header {got!r}; expected {','.join(HEADER)}")
    rows: dict[str, tuple[int, list[int], list[int]]] = {}
    for lineno, row in enumerate(reader, start=2):
        if not row:
            continue
        where = f"{path}:{lineno}"
        if len(row) != len(HEADER):
            raise VotesError(f"{where}: {len(row)} fields; expected {len(HEADER)} ({','.join(HEADER)})")
        file, _, ferplus_rows = (c.strip() for c in row[:3])
        raw = [c.strip() for c in row[3:]]
        if all(c == "" for c in raw):
            counts = [0] * len(raw)  # FER+ dropped the face
        else:
            try:
                counts = [int(c) for c in raw]
            except ValueError:
                raise VotesError(f"{where}: votes {','.join(raw)!r}; expected whole numbers of votes") from None
            if min(counts) < 0:
                raise VotesError(f"{where}: a negative vote count; expected whole numbers of votes")
        emotions = [counts[i] for i in _ORDER]
        entry = (lineno, emotions, counts[len(FERPLUS_COLUMNS) :])
        row_keys = [f"row:{int(r)}" for r in ferplus_rows.split(";") if r.strip().isdigit()]
        if not file and not row_keys:
            raise VotesError(f"{where}: neither a file nor a row of fer2013.csv")
        if file:
            if file in rows:
                raise VotesError(f"{where}: {file} is listed twice (first on line {rows[file][0]})")
            rows[file] = entry
        for key in row_keys:  # the copies of a face FER2013 holds twice each list all its rows, with the same votes
            rows.setdefault(key, entry)
    return rows


def read_votes(path: str | Path, keys: list[str]) -> Votes:
    """The votes of each face named in `keys` (a FER2013 data set's `keys`), in that order."""
    path = Path(path)
    if not path.is_file():
        raise VotesError(f"{path}: no such votes file; expected FER+'s votes.csv (--votes PATH)")
    rows = _parse(path)
    missing = [k for k in keys if k not in rows]
    if missing:
        raise VotesError(
            f"{path}: no votes for {missing[0]}"
            + (f" and {len(missing) - 1} more faces" if len(missing) > 1 else "")
            + "; the votes file does not match this copy of FER2013"
        )
    counts = np.array([rows[k][1] for k in keys], dtype=np.int64).reshape(-1, len(EMOTIONS))
    other = np.array([rows[k][2] for k in keys], dtype=np.int64).reshape(-1, len(OTHER_COLUMNS))
    return Votes(counts=counts, other=other, source=str(path))
