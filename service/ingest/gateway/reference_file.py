"""A reference file the gateway reads at start and again whenever it changes (tokens, units,
source profiles, procedures): a file that turns bad while running keeps the last good
version in force, and `last_error` says why, so a half-saved edit never stops the gateway."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Generic, TypeVar

T = TypeVar("T")


class ReferenceFile(Generic[T]):
    """The file at `path` (None: no file, the empty content), re-read when its modification
    time or size changes. A subclass names the file (`KIND`), its encoding, the error its
    parser raises (anything else the parser raises becomes that error), and how to parse it
    and what no file means."""

    KIND: ClassVar[str]  # as in "the units file"
    ENCODING: ClassVar[str] = "utf-8"
    Error: ClassVar[type[ValueError]]

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._content: T = self._empty()
        self._stamp: tuple[int, int] | None = None
        self.last_error: str | None = None

    def _parse(self, text: str, origin: str) -> T:
        raise NotImplementedError

    def _empty(self) -> T:
        raise NotImplementedError

    def load(self) -> None:
        """Read the file now; `Error` if it is missing or bad (used at start-up)."""
        if self.path is None:
            return
        try:
            stat = self.path.stat()
            text = self.path.read_text(encoding=self.ENCODING)
        except (OSError, UnicodeDecodeError) as exc:
            raise self.Error(f"cannot read the {self.KIND} file {self.path}: {exc}") from None
        try:
            content = self._parse(text, str(self.path))
        except self.Error:
            raise
        except Exception as exc:
            # Whatever else a parser meets (a CSV field past the csv module's limit, a value
            # of a type no check foresaw) is still the file's fault: the file's own error,
            # so a start says it in one line and a running gateway keeps the last good one.
            raise self.Error(
                f"cannot read the {self.KIND} file {self.path}: {_line(exc)}"
            ) from None
        self._content = content
        self._stamp = (stat.st_mtime_ns, stat.st_size)
        self.last_error = None

    def _refresh(self) -> None:
        if self.path is None:
            return
        try:
            stat = self.path.stat()
        except OSError as exc:
            self.last_error = f"cannot read the {self.KIND} file: {exc.strerror or exc}"
            return
        if (stat.st_mtime_ns, stat.st_size) == self._stamp:
            return
        try:
            self.load()
        except self.Error as exc:
            self.last_error = str(exc)

    @property
    def content(self) -> T:
        """What the file says now (read again first if it changed)."""
        self._refresh()
        return self._content


def _line(exc: Exception) -> str:
    """An exception as one line of text (its first), else its type's name."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
