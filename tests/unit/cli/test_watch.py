"""The plugin folder watcher: which files count, debounce, and polling without sleeps."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ekuiper._cli.watch import Changes, Settle, Watcher, changes, snapshot

Stamps = dict[str, tuple[int, int]]


def _touch(path: Path, text: str = "x", mtime_ns: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))


def test_snapshot_holds_what_package_packs(tmp_path: Path) -> None:
    """Hidden files, .deps, __pycache__, tests and zips are not watched."""
    for name in ("plug.json", "plug.py", "pkg/mod.py", ".env", ".plug.py.swp",
                 ".deps/lib.py", "__pycache__/plug.cpython-311.pyc", "tests/test_x.py",
                 "plug.zip", "sources/s.yaml"):
        _touch(tmp_path / name)
    assert sorted(snapshot(tmp_path)) == ["pkg/mod.py", "plug.json", "plug.py",
                                          "sources/s.yaml"]


def test_snapshot_with_hidden_files_watches_them_too(tmp_path: Path) -> None:
    """include_hidden watches what `package --include-hidden` packs."""
    _touch(tmp_path / ".env")
    assert ".env" in snapshot(tmp_path, include_hidden=True)


def test_snapshot_stamps_are_mtime_and_size(tmp_path: Path) -> None:
    """A file's stamp is its modification time in ns and its size."""
    _touch(tmp_path / "a.py", "hello", mtime_ns=1_000_000_000)
    assert snapshot(tmp_path) == {"a.py": (1_000_000_000, 5)}


def test_snapshot_of_a_missing_folder_raises_oserror(tmp_path: Path) -> None:
    """A folder that cannot be listed is an OSError for the caller to handle."""
    with pytest.raises(OSError):
        snapshot(tmp_path / "gone")


def test_changes_name_added_removed_and_modified_files() -> None:
    """changes() sorts each kind of difference."""
    found = changes({"a": (1, 1), "b": (1, 1), "c": (1, 1)},
                    {"a": (1, 1), "b": (2, 1), "d": (1, 1)})
    assert found == Changes(added=("d",), removed=("c",), modified=("b",))
    assert found.describe() == "b changed; d added; c removed"


def test_no_changes_is_false() -> None:
    """Equal snapshots give an empty, false Changes."""
    assert not changes({"a": (1, 1)}, {"a": (1, 1)})


def test_describe_shortens_a_long_list() -> None:
    """More than five files of one kind are counted, not listed."""
    many = Changes(modified=tuple(f"f{i}.py" for i in range(8)))
    assert many.describe() == "f0.py, f1.py, f2.py, f3.py, f4.py and 3 more changed"


stamps = st.dictionaries(st.sampled_from(["a.py", "b.py", "c/d.py", "e.json"]),
                         st.tuples(st.integers(0, 3), st.integers(0, 3)))


@given(stamps, stamps)
def test_changes_cover_every_difference(before: Stamps, after: Stamps) -> None:
    """Every path that differs is in exactly one list; equal ones are in none."""
    found = changes(before, after)
    listed = [*found.added, *found.removed, *found.modified]
    assert len(listed) == len(set(listed))
    assert set(listed) == {p for p in set(before) | set(after) if before.get(p) != after.get(p)}


def test_settle_reports_once_after_the_quiet_period() -> None:
    """A change is reported when it has stayed put for `quiet` seconds, and only once."""
    settle = Settle({"a": (1, 1)}, quiet=0.3)
    assert settle.observe(0.0, {"a": (2, 1)}) is None
    assert settle.pending
    assert settle.observe(0.2, {"a": (2, 1)}) is None
    assert settle.observe(0.3, {"a": (2, 1)}) == Changes(modified=("a",))
    assert settle.observe(0.6, {"a": (2, 1)}) is None
    assert not settle.pending


def test_settle_counts_a_burst_as_one_change() -> None:
    """Writes in quick succession (an editor's save) give one report of the net change."""
    settle = Settle({"a": (1, 1)}, quiet=0.3)
    for now, scan in ((0.0, {"a": (2, 1)}), (0.1, {"a": (2, 0), ".a~": (1, 1)}),
                      (0.2, {"a": (3, 5), "b": (1, 1)}), (0.3, {"a": (3, 5), "b": (1, 1)})):
        assert settle.observe(now, scan) is None
    assert settle.observe(0.5, {"a": (3, 5), "b": (1, 1)}) == Changes(added=("b",),
                                                                       modified=("a",))


def test_settle_reports_nothing_for_a_burst_that_ends_where_it_began() -> None:
    """A file changed and changed back before settling is no change."""
    settle = Settle({"a": (1, 1)}, quiet=0.3)
    assert settle.observe(0.0, {"a": (2, 2)}) is None
    assert settle.observe(0.1, {"a": (1, 1)}) is None
    assert settle.observe(1.0, {"a": (1, 1)}) is None
    assert not settle.pending


def test_settle_waits_while_the_folder_is_unreadable() -> None:
    """An unreadable scan keeps the change pending until the folder reads again."""
    settle = Settle({"a": (1, 1)}, quiet=0.3)
    assert settle.observe(0.0, {"a": (2, 1)}) is None
    assert settle.observe(0.5, None) is None
    assert settle.observe(0.6, {"a": (2, 1)}) is None
    assert settle.observe(0.9, {"a": (2, 1)}) == Changes(modified=("a",))


def test_settle_refuses_a_negative_quiet_period() -> None:
    """A negative quiet period is a ValueError naming it."""
    with pytest.raises(ValueError, match="quiet period"):
        Settle({}, quiet=-1)


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_watcher_wait_returns_the_settled_change_without_real_sleeping() -> None:
    """wait() polls on the injected clock and returns once the change settles."""
    fake = FakeTime()
    scans: list[Stamps] = [{"a": (1, 1)}, {"a": (1, 1)}, {"a": (2, 1)}]

    def scan() -> Stamps:
        return scans.pop(0) if len(scans) > 1 else scans[0]

    watcher = Watcher(Path("."), interval=0.5, quiet=0.3, clock=fake.clock,
                      sleep=fake.sleep, scan=scan)
    assert watcher.wait() == Changes(modified=("a",))
    assert fake.sleeps == [0.5, 0.5]


def test_watcher_says_once_that_the_folder_is_unreadable() -> None:
    """A folder that stays unreadable is reported once, not on every scan."""
    fake = FakeTime()
    notes: list[str] = []

    def scan() -> Stamps:
        raise PermissionError("denied")

    watcher = Watcher(Path("."), clock=fake.clock, sleep=fake.sleep, scan=scan,
                      on_unreadable=lambda exc: notes.append(str(exc)))
    assert [watcher.poll() for _ in range(3)] == [None, None, None]
    assert notes == ["denied"]


def test_watcher_sees_a_real_file_edit(tmp_path: Path) -> None:
    """End to end on a real folder: an edit of plug.py is reported as changed."""
    _touch(tmp_path / "plug.py", "a", mtime_ns=1_000_000_000)
    fake = FakeTime()
    watcher = Watcher(tmp_path, quiet=0.0, clock=fake.clock, sleep=fake.sleep)
    assert watcher.poll() is None
    _touch(tmp_path / "plug.py", "b", mtime_ns=2_000_000_000)
    _touch(tmp_path / ".plug.py.swp", "swap")
    assert watcher.poll() is None  # seen, not yet settled
    assert watcher.poll() == Changes(modified=("plug.py",))


def test_watcher_refuses_a_non_positive_interval() -> None:
    """An interval of 0 or less is a ValueError naming it."""
    with pytest.raises(ValueError, match="poll interval"):
        Watcher(Path("."), interval=0, scan=dict)
