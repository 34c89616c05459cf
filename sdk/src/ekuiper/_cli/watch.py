"""Which files of a plugin folder changed: the polling watcher behind ``run --reload``
and ``dev``.

It watches exactly the files ``package`` would pack (:func:`ekuiper._cli.package.select_files`):
hidden files (editor swap files among them), ``.deps``, ``__pycache__``, ``tests`` and zips
never count. A file counts as changed when its modification time or size differs.

An editor's save is often a burst (write a temporary file, rename it over, touch a
backup): :class:`Settle` waits until the folder has been quiet for ``quiet`` seconds and
then reports the net change since the last report once, so a burst that ends where it
began reports nothing at all.

:func:`snapshot` and :class:`Settle` are pure (no threads, no clock of their own);
:class:`Watcher` drives them with an injectable clock, sleep and scan, so all of it is
tested without sleeping. Standard library only: polling costs a ``stat`` per file per
interval, which for a plugin folder is nothing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ekuiper._cli.package import select_files

__all__ = ["Changes", "Settle", "Snapshot", "Watcher", "changes", "snapshot"]

Stamp = tuple[int, int]
"""(modification time in ns, size in bytes) of one file."""
Snapshot = Mapping[str, Stamp]
"""Each watched file, by path relative to the folder (posix), with its stamp."""


def snapshot(folder: Path, include_hidden: bool = False) -> dict[str, Stamp]:
    """The stamps of the files ``package`` would pack from ``folder``.

    A file that vanishes between listing and ``stat`` is left out (it is being replaced).
    Raises OSError when the folder itself cannot be listed.
    """
    root = folder.resolve()
    stamps: dict[str, Stamp] = {}
    for path in select_files(root, include_hidden).files:
        try:
            st = os.stat(path)
        except OSError:
            continue
        stamps[path.relative_to(root).as_posix()] = (st.st_mtime_ns, st.st_size)
    return stamps


@dataclass(frozen=True)
class Changes:
    """What differs between two snapshots; false when nothing does."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    modified: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.modified)

    def describe(self, limit: int = 5) -> str:
        """One line for the user: ``symbols.py changed; extra.py added``."""
        parts = []
        for verb, names in (("changed", self.modified), ("added", self.added),
                            ("removed", self.removed)):
            if names:
                shown = ", ".join(names[:limit])
                more = f" and {len(names) - limit} more" if len(names) > limit else ""
                parts.append(f"{shown}{more} {verb}")
        return "; ".join(parts) or "nothing changed"


def changes(before: Snapshot, after: Snapshot) -> Changes:
    """The files added, removed and modified from ``before`` to ``after``, each sorted."""
    return Changes(
        added=tuple(sorted(set(after) - set(before))),
        removed=tuple(sorted(set(before) - set(after))),
        modified=tuple(sorted(p for p in set(before) & set(after) if before[p] != after[p])),
    )


@dataclass
class Settle:
    """Debounce: report the net change once the folder has been quiet for ``quiet`` s.

    Feed it every scan with :meth:`observe`; it answers the Changes since the last
    report (or since ``base``) when they have settled, else None. Pure: the caller
    supplies the time.
    """

    base: dict[str, Stamp]
    quiet: float = 0.3
    _latest: dict[str, Stamp] = field(init=False)
    _since: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.quiet < 0:
            raise ValueError(f"the quiet period must be 0 or more seconds, not {self.quiet}")
        self._latest = dict(self.base)

    @property
    def pending(self) -> bool:
        """A change has been seen and not reported yet (it may still be settling)."""
        return self._since is not None

    def observe(self, now: float, scan: Snapshot | None) -> Changes | None:
        """Take one scan taken at ``now`` (None: the folder could not be read).

        An unreadable folder counts as "still changing": nothing is reported until it
        reads again and stays quiet.
        """
        if scan is None:
            self._since = now
            return None
        if scan != self._latest:
            self._latest = dict(scan)
            self._since = now
            return None
        if self._since is None or now - self._since < self.quiet:
            return None
        self._since = None
        found = changes(self.base, self._latest)
        self.base = dict(self._latest)
        return found or None


class Watcher:
    """Polls a plugin folder every ``interval`` s; :meth:`wait` returns settled Changes.

    Threads: not thread-safe; one thread polls (the command's main thread). ``wait``
    blocks in ``sleep``, so Ctrl-C (KeyboardInterrupt) ends it between scans.
    """

    def __init__(self, folder: Path, *, include_hidden: bool = False, interval: float = 0.5,
                 quiet: float = 0.3, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 scan: Callable[[], dict[str, Stamp]] | None = None,
                 on_unreadable: Callable[[OSError], None] = lambda _: None) -> None:
        if interval <= 0:
            raise ValueError(f"the poll interval must be a positive number of seconds, "
                             f"not {interval}")
        self.folder = folder
        self.interval = interval
        self._clock, self._sleep = clock, sleep
        self._scan = scan or (lambda: snapshot(folder, include_hidden))
        self._on_unreadable = on_unreadable
        self._unreadable = False
        self._settle = Settle(self._read() or {}, quiet)

    def _read(self) -> dict[str, Stamp] | None:
        try:
            found = self._scan()
        except OSError as exc:
            if not self._unreadable:  # say it once, not every interval
                self._on_unreadable(exc)
            self._unreadable = True
            return None
        self._unreadable = False
        return found

    def poll(self) -> Changes | None:
        """Scan once; the settled Changes, or None. Never sleeps."""
        return self._settle.observe(self._clock(), self._read())

    def wait(self, idle: Callable[[], None] = lambda: None) -> Changes:
        """Poll until a settled change; ``idle`` runs after each empty scan."""
        while True:
            found = self.poll()
            if found:
                return found
            idle()
            self._sleep(self.interval)
