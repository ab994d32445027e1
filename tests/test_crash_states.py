"""Power loss at any point of the commit protocol (formats/SPEC.md section 4, "Commits").

test_durability.py kills the writing process, which leaves a prefix of its writes. A power
loss can leave more kinds of file: what an fsync covered is on the disk, and of the writes
issued since, any subset, in any order, some torn at a sector or at any byte; a new name or
a rename that no folder fsync covered may or may not be there. Like ALICE (Pillai et al.,
OSDI '14) and SQLite's crash-test VFS, these tests record every file-system call the
writer makes during a story of operations, build the states a power loss could leave at
each point of that log, write each out as real files and check that it opens, verifies
and holds exactly the state after some prefix of the story: never a mix of two commits,
never without an operation whose last fsync had returned.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import stat
from dataclasses import dataclass, replace
from itertools import combinations

import numpy as np
import pytest

import edgevec
from edgevec import fileio
from edgevec.storage import writer as writer_mod
from edgevec.storage.layout import SLOT_OFFSETS, SLOT_SIZE
from helpers import batch_ids, batch_vectors

DIM = 16
NAME = "story.edgevec"
SECTOR = 512
QUERY = batch_vectors(99, 1, DIM)[0]


@dataclass(frozen=True)
class Call:
    """One logged file-system call. Files are numbered in the order they were created."""

    kind: str  # write, truncate, fsync (a file), dirsync (the folder), creat, link, rename, unlink
    file: int = -1
    offset: int = 0  # write: where it starts; truncate: the new size
    data: bytes = b""
    name: str = ""  # creat, link, rename, unlink: the entry it makes, moves or removes
    to: str = ""  # link, rename: the new name


class Crash(BaseException):
    """Stands for the writing process dying: nothing after it runs."""


class Recorder:
    """Stands in for `os` in the writer and in fileio (and for the writer's `_pwrite`):
    every call runs for real and is logged. `broken` breaks the protocol on purpose, to
    show the checker notices: "slot barrier" skips the fsync between the directory and the
    commit slot, "folder fsync" skips the fsync of the folder after a new name or rename,
    "one slot" writes every commit into the first slot, over the current one.
    `die_before_slot`: the next commit slot write raises Crash instead."""

    def __init__(self, folder: str, *, broken: str | None = None) -> None:
        self.folder = folder
        self.broken = broken
        self.die_before_slot = False
        self.calls: list[Call] = []
        self._files: dict[tuple[int, int], int] = {}

    def __getattr__(self, name):
        return getattr(os, name)

    def _file(self, fd: int) -> int:
        st = os.fstat(fd)
        return self._files[(st.st_dev, st.st_ino)]

    def _file_at(self, path) -> int:
        st = os.stat(path)
        return self._files[(st.st_dev, st.st_ino)]

    def _name(self, path) -> str:
        head, tail = os.path.split(os.path.abspath(path))
        assert head == self.folder, f"the writer touched {path}, outside the story's folder"
        return tail

    def open(self, path, flags, mode=0o777, **kw):
        fd = os.open(path, flags, mode, **kw)
        if flags & os.O_CREAT:
            st = os.fstat(fd)
            self._files[(st.st_dev, st.st_ino)] = number = len(self._files)
            self.calls.append(Call("creat", number, name=self._name(path)))
        return fd

    def pwrite(self, fd, data, offset):
        data = memoryview(data).cast("B")
        if self.die_before_slot and offset in SLOT_OFFSETS:
            self.die_before_slot = False
            raise Crash()
        if self.broken == "one slot" and offset in SLOT_OFFSETS:
            offset = SLOT_OFFSETS[0]
        n = os.pwrite(fd, data, offset)
        self.calls.append(Call("write", self._file(fd), offset, bytes(data[:n])))
        return n

    def ftruncate(self, fd, length):
        os.ftruncate(fd, length)
        self.calls.append(Call("truncate", self._file(fd), length))

    def fsync(self, fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            assert os.path.samestat(os.fstat(fd), os.stat(self.folder))
            if self.broken != "folder fsync":
                os.fsync(fd)
                self.calls.append(Call("dirsync"))
            return
        if self.broken == "slot barrier" and not is_slot(
                next(c for c in reversed(self.calls) if c.kind == "write")):
            return
        os.fsync(fd)
        self.calls.append(Call("fsync", self._file(fd)))

    def link(self, src, dst, **kw):
        os.link(src, dst, **kw)
        self.calls.append(Call("link", self._file_at(dst), name=self._name(src),
                               to=self._name(dst)))

    def _move(self, src, dst, move):
        number = self._file_at(src)
        move(src, dst)
        self.calls.append(Call("rename", number, name=self._name(src), to=self._name(dst)))

    def rename(self, src, dst, **kw):
        self._move(src, dst, os.rename)

    def replace(self, src, dst, **kw):
        self._move(src, dst, os.replace)

    def unlink(self, path, **kw):
        os.unlink(path, **kw)
        self.calls.append(Call("unlink", name=self._name(path)))

    remove = unlink


def is_slot(call: Call) -> bool:
    return call.offset in SLOT_OFFSETS and len(call.data) == SLOT_SIZE


# --- the story -----------------------------------------------------------------------------


def observe(path: str):
    """What a reader sees in the file at `path` (None: no file): every live row's id, text,
    metadata and vector, the stored funnel depth and a search, after `verify` passed."""
    if not os.path.exists(path):
        return None
    edgevec.verify(path)
    with edgevec.open(path) as idx:
        rows = []
        for ident in idx.ids():
            r = idx.get(ident)
            rows.append((ident, r.text, tuple(sorted((r.metadata or {}).items())),
                         np.asarray(r.vector).tobytes()))
        hits = idx.search(QUERY, k=5, threads=1) if len(idx) else None
        found = (hits.ids, hits.scores.tobytes()) if hits is not None else None
        return tuple(rows), idx.info()["rescore_m"], found


def record_story(folder: str, monkeypatch, *, broken: str | None = None):
    """Run the story in `folder` under a Recorder -> (calls, spans, states): operation k
    issued calls[spans[k][1]:spans[k][2]], and states[j] is what a reader sees after j
    operations (states[0]: no file yet). A writer that dies before its slot (not an
    operation: it commits nothing) leaves bytes past the committed ones, which the next
    commit overwrites and truncates."""
    rec = Recorder(folder, broken=broken)
    path = os.path.join(folder, NAME)
    idx = None

    def create():
        nonlocal idx
        idx = edgevec.Index.create(path, dim=DIM)

    def add(b: int, n: int, *, replacing: tuple[str, ...] = ()):
        """Seeded batch `b` of `n` rows; the ids `replacing` take its last rows' place."""
        idx.add(batch_vectors(b, n, DIM), ids=batch_ids(b, n - len(replacing)) + [*replacing],
                texts=[f"batch {b} row {i}" for i in range(n)],
                metadata=[{"batch": b, "row": i, "lang": ("en", "fr", "de")[i % 3]}
                          for i in range(n)], replace=bool(replacing))

    def dies_before_its_slot():
        nonlocal idx
        rec.die_before_slot = True
        with pytest.raises(Crash):
            add(4, 40)
        # the process is gone, and its descriptor and lock with it; a new one opens
        idx._writer.snapshot.close()
        os.close(idx._writer.fd)
        idx._writer.fd = -1
        idx = edgevec.open(path, writable=True)

    story = [
        ("create", create),
        ("add A", lambda: add(0, 12)),
        ("add B", lambda: add(1, 12)),
        (None, dies_before_its_slot),
        ("delete", lambda: idx.delete(batch_ids(0, 12)[2:5])),
        ("calibrate", lambda: idx.calibrate(k=5, queries=12)),
        ("upsert C", lambda: add(2, 9, replacing=("b1-r7",))),
        ("compact", lambda: idx.compact()),
        ("add D", lambda: add(3, 6)),
    ]
    spans, states = [], [None]
    with monkeypatch.context() as patched:
        patched.setattr(writer_mod, "os", rec)
        patched.setattr(fileio, "os", rec)
        patched.setattr(writer_mod, "_pwrite", rec.pwrite)
        try:
            for label, action in story:
                start = len(rec.calls)
                action()
                if label is not None:
                    spans.append((label, start, len(rec.calls)))
                    states.append(observe(path))
        finally:
            if idx is not None:
                idx.close()
    return rec.calls, spans, states


# --- crash states ----------------------------------------------------------------------------


@dataclass
class Point:
    """A crash after the first `at` calls: what the disk surely holds, what may have landed."""

    at: int
    files: dict[int, bytes]  # each file's content as of its last fsync
    names: dict[str, int]  # the folder as of its last fsync
    writes: list[Call]  # writes and truncates since their file's last fsync, in issue order
    entries: list[Call]  # creat, link, rename, unlink since the last folder fsync
    last: bool  # the last point before a sync returns (or the end of the log)


def apply_writes(content: bytes, writes) -> bytes:
    """`content` after `writes`, in issue order: where two overlap the later one wins, as
    in the page cache, so any order of landing is some subset applied in issue order."""
    buf = bytearray(content)
    for w in writes:
        if w.kind == "truncate":
            del buf[w.offset:]
            buf.extend(bytes(w.offset - len(buf)))
        else:
            end = w.offset + len(w.data)
            if end > len(buf):
                buf.extend(bytes(end - len(buf)))
            buf[w.offset:end] = w.data
    return bytes(buf)


def apply_entries(names: dict[str, int], entries) -> dict[str, int]:
    names = dict(names)
    for e in entries:
        if e.kind in ("creat", "link"):
            names[e.to or e.name] = e.file
        elif e.kind == "rename":
            names.pop(e.name, None)
            names[e.to] = e.file
        else:
            names.pop(e.name, None)
    return names


def crash_points(calls: list[Call]):
    files: dict[int, bytes] = {}
    names: dict[str, int] = {}
    writes: list[Call] = []
    entries: list[Call] = []
    for at in range(len(calls) + 1):
        nxt = calls[at] if at < len(calls) else None
        yield Point(at, dict(files), dict(names), list(writes), list(entries),
                    nxt is None or nxt.kind in ("fsync", "dirsync"))
        if nxt is None:
            break
        if nxt.kind in ("write", "truncate"):
            writes.append(nxt)
        elif nxt.kind == "fsync":
            files[nxt.file] = apply_writes(files.get(nxt.file, b""),
                                           [w for w in writes if w.file == nxt.file])
            writes = [w for w in writes if w.file != nxt.file]
        elif nxt.kind == "dirsync":
            names = apply_entries(names, entries)
            entries = []
        else:
            entries.append(nxt)


def torn(w: Call, cut: int, keep_head: bool) -> Call:
    """`w` of which only the bytes before (or from) `cut` reached the disk."""
    rel = cut - w.offset
    if keep_head:
        return replace(w, data=w.data[:rel])
    return replace(w, offset=cut, data=w.data[rel:])


def write_variants(ws: list[Call], rnd: random.Random):
    """(label, writes that landed) for a point's unsynced writes `ws`."""
    n = len(ws)
    yield "all dropped", []
    if not n:
        return
    yield "all kept", ws
    for i in range(n):
        yield f"only #{i} kept", [ws[i]]
        if n > 1:
            yield f"all but #{i} kept", ws[:i] + ws[i + 1:]
    for r in range(4):
        yield f"random subset {r}", [w for w in ws if rnd.random() < 0.5]
    for i, w in enumerate(ws):
        if w.kind != "write" or len(w.data) < 2:
            continue
        sectors = range((w.offset // SECTOR + 1) * SECTOR, w.offset + len(w.data), SECTOR)
        for cut in sorted({sectors[0], rnd.choice(sectors)}) if sectors else ():
            yield f"#{i} torn at sector {cut}, later dropped", ws[:i] + [torn(w, cut, True)]
            yield f"#{i} torn at sector {cut}, rest kept", (
                ws[:i] + [torn(w, cut, True)] + ws[i + 1:])
            yield f"#{i} only from sector {cut}, rest kept", (
                ws[:i] + [torn(w, cut, False)] + ws[i + 1:])
        cut = w.offset + rnd.randrange(1, len(w.data))
        yield f"#{i} torn at byte {cut}, later dropped", ws[:i] + [torn(w, cut, True)]
        yield f"#{i} torn at byte {cut}, rest kept", ws[:i] + [torn(w, cut, True)] + ws[i + 1:]
        yield f"#{i} zeros (size landed, data did not), rest kept", (
            ws[:i] + [replace(w, data=bytes(len(w.data)))] + ws[i + 1:])


def entry_variants(es: list[Call]):
    """(label, entries that landed): every subset, in issue order."""
    for r in range(len(es) + 1):
        for pick in combinations(range(len(es)), r):
            yield ("names: " + (", ".join(f"{es[i].kind} {es[i].to or es[i].name}"
                                          for i in pick) or "none landed"),
                   [es[i] for i in pick])


@dataclass
class State:
    point: Point
    label: str
    writes: list[Call]
    entries: list[Call]
    must: bool  # always checked; the others are sampled


def crash_states(calls: list[Call], rnd: random.Random) -> list[State]:
    """Every point gets 'all dropped' and 'all kept' (the process-crash state there); the
    last point before each sync gets the whole family, which holds every state of the
    earlier points of its stretch too, with every subset of the unsynced names under 'all
    dropped' and 'all kept'. Deduplicated, earliest (strictest) point first. `must`: the
    last points' states that drop all, keep all, keep one or drop one of the writes, and
    every state of a last point whose unsynced writes include a commit slot."""
    seen, out = set(), []
    for p in crash_points(calls):
        ws_variants = list(write_variants(p.writes, rnd)) if p.last else (
            [("all dropped", []), ("all kept", p.writes)] if p.writes else
            [("all dropped", [])])
        es_variants = list(entry_variants(p.entries))
        at_slot = any(is_slot(w) for w in p.writes)
        combos = [(wl, w, el, e, p.last and (at_slot or wl in ("all dropped", "all kept")
                                               or wl.startswith(("only", "all but"))))
                  for wl, w in ws_variants for el, e in es_variants[-1:]]
        combos += [(wl, w, el, e, p.last) for wl, w in ws_variants[:2]
                   for el, e in es_variants[:-1]]
        for wl, w, el, e, must in combos:
            key = (tuple(p.files.items()), tuple(p.names.items()),
                   tuple((c.file, c.kind, c.offset, c.data) for c in w),
                   tuple(id(c) for c in e))
            if key in seen:
                continue
            seen.add(key)
            out.append(State(p, f"{wl}; {el}", w, e, must))
    return out


def materialise(state: State, folder: str) -> None:
    """Write the files of `state` into `folder`, over those of the state before: in place,
    which is many times faster here than deleting and creating them again."""
    names = apply_entries(state.point.names, state.entries)
    for name in set(os.listdir(folder)) - set(names):
        os.unlink(os.path.join(folder, name))
    for name, number in names.items():
        content = apply_writes(state.point.files.get(number, b""),
                               [w for w in state.writes if w.file == number])
        fd = os.open(os.path.join(folder, name), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            os.pwrite(fd, content, 0)
            os.ftruncate(fd, len(content))
        finally:
            os.close(fd)


def choose(states: list[State], budget: int, rnd: random.Random) -> list[State]:
    """The must states and a seeded sample of the others, `budget` in all, in log order."""
    must = [s for s in states if s.must]
    rest = [s for s in states if not s.must]
    picked = set(map(id, must + rnd.sample(rest, max(0, min(len(rest), budget - len(must))))))
    return [s for s in states if id(s) in picked]


def allowed(calls: list[Call], spans, at: int) -> range:
    """The story prefixes a crash after `at` calls may leave: every operation whose last
    sync had returned is in it, none that had not begun."""
    done = sum(1 for _, start, end in spans
               if max(i for i in range(start, end) if calls[i].kind in ("fsync", "dirsync"))
               < at)
    begun = sum(1 for _, start, _ in spans if start < at)
    return range(done, begun + 1)


def check(state: State, folder: str, may: range, states: list, *, carry_on: bool):
    """Materialise `state` in `folder` -> (the story prefix it holds, None) or (None, what
    is wrong). `carry_on`: also check that a writer appends to it."""
    materialise(state, folder)
    path = os.path.join(folder, NAME)
    try:
        got = observe(path)
    except edgevec.EdgevecError as exc:
        return None, f"{type(exc).__name__}: {exc}"
    held = [j for j in may if states[j] == got]
    if not held:
        near = [j for j in range(len(states)) if states[j] == got]
        return None, (f"holds the state after {near} operations" if near else
                      "holds the state after no prefix of the story (a mix)") + (
                          f", not after one of {list(may)}")
    if carry_on and got is not None:
        try:
            with edgevec.open(path, writable=True) as idx:
                idx.add(batch_vectors(98, 1, DIM), ids=["after the crash"])
            after = observe(path)
        except edgevec.EdgevecError as exc:
            return None, f"a writer appending after the crash: {type(exc).__name__}: {exc}"
        if after[0][:-1] != got[0] or after[0][-1][0] != "after the crash":
            return None, "a writer appending after the crash changed the committed rows"
    return held[0], None


def describe(state: State, calls: list[Call], spans) -> str:
    at = state.point.at
    running = [label for label, start, end in spans if start < at <= end]
    before = [label for label, _, end in spans if end < at]
    where = (f"during {running[0]}" if running else
             f"after {before[-1]}" if before else "before the story")
    return (f"crash after call {at} of {len(calls)} ({where}), "
            f"{len(state.point.writes)} writes unsynced: {state.label}")


def run_checks(tmp_path, calls, spans, states, chosen, *, stop_at_first: bool = False):
    """Check every chosen state -> ({prefix: states holding it}, [failure descriptions]);
    a failing state is kept in tmp_path/failed-N."""
    folder = str(tmp_path / "crash")
    os.mkdir(folder)
    held, failures = {}, []
    for n, state in enumerate(chosen):
        j, problem = check(state, folder, allowed(calls, spans, state.point.at), states,
                           carry_on=n % 40 == 0)
        if problem is None:
            held[j] = held.get(j, 0) + 1
            continue
        shutil.copytree(folder, str(tmp_path / f"failed-{n}"))
        failures.append(f"{describe(state, calls, spans)}: {problem}")
        if stop_at_first:
            break
    return held, failures


STATES = 800


@pytest.mark.slow
def test_every_power_loss_state_opens_to_a_committed_prefix(tmp_path, monkeypatch):
    """The story (create; add A; add B; a writer dying before its slot; delete, which
    overwrites and truncates the dead writer's bytes; calibrate, a meta-only commit; an
    upsert; compact; add D) logs 266 calls, 241 of them writes. The builder makes 1,508
    distinct crash states of them (crash_states); the 493 it must check are checked and a
    seeded sample of the others makes 800 (about 5 s of one core), every 40th also taking
    one more commit from a new writer."""
    live = tmp_path / "live"
    live.mkdir()
    calls, spans, states = record_story(str(live), monkeypatch)
    # the story is the one told: each operation changed what a reader sees (compaction
    # only the layout), the dead writer's bytes were truncated
    assert [len(s[0]) for s in states[1:]] == [0, 12, 24, 21, 21, 29, 29, 35]
    assert states[4][1] is None and states[5][1] is not None  # calibrate stored m
    assert all(states[j] != states[j + 1] for j in range(len(states) - 1) if j != 6)
    assert sum(c.kind == "truncate" for c in calls) == 1
    candidates = crash_states(calls, random.Random(23))
    chosen = choose(candidates, STATES, random.Random(24))
    assert len(chosen) == STATES, f"{sum(c.must for c in candidates)} must be checked"
    held, failures = run_checks(tmp_path, calls, spans, states, chosen)
    assert not failures, f"{len(failures)} of {len(chosen)} crash states:\n" + "\n".join(
        failures[:10])
    assert sorted(held) == list(range(len(states)))  # every prefix turned up in some state


@pytest.mark.parametrize("broken, symptom", [
    pytest.param("slot barrier", r"ChecksumMismatch|TruncatedFile", id="no-fsync-before-slot"),
    pytest.param("folder fsync", r"holds the state after \[0\] operations, not after one of \[1",
                 id="no-folder-fsync"),
    pytest.param("one slot", r"HeaderError: .*neither commit slot is intact", id="one-slot"),
])
def test_the_checker_catches_a_broken_protocol(tmp_path, monkeypatch, broken, symptom):
    """Guards the test above against passing vacuously: with the fsync between the
    directory and the slot skipped, some state's slot lands without the bytes it commits;
    with the folder fsync skipped, a created index can vanish after create returned; with
    one slot, a torn slot write leaves no commit at all."""
    live = tmp_path / "live"
    live.mkdir()
    calls, spans, states = record_story(str(live), monkeypatch, broken=broken)
    chosen = choose(crash_states(calls, random.Random(23)), STATES, random.Random(24))
    _, failures = run_checks(tmp_path, calls, spans, states, chosen, stop_at_first=True)
    assert failures, f"no crash state of the protocol broken by {broken!r} failed"
    assert re.search(symptom, failures[0]), failures[0]
