"""CSV manifests: a header row, then one audio per row, without the rows kept in memory.

Owns: what the columns mean (matched loosely: `min_audios` is `minAudios`; unknown columns are
kept for the failures CSV and otherwise ignored, since exports carry the operator's own), the
grouping of rows into enrollments by (owner, space, identity, voiceprint), the rule that rows of
one enrollment agree, and the two passes over the file's bytes (`worker.manifest.csvscan`): the
first keeps per row only its offset and line, per enrollment its first row, and per key a 64-bit
hash (confirmed on the row read again, so a collision never joins two enrollments); the second
re-reads each enrollment's rows by offset when it is built, in the order of first lines. A
1 000 000-row file costs ~55 MB over the imports instead of ~1.3 GB of parsed rows.
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from worker.manifest.build import AudioIn, Builder, Candidate
from worker.manifest.columns import header_delimiter, header_problems
from worker.manifest.cross import build_each
from worker.manifest.csvscan import BOM, Records, RowTable, first_line, scan_bytes
from worker.manifest.keyindex import KeyIndex
from worker.manifest.models import ManifestDefaults, ManifestItem, Problem
from worker.manifest.stream import ManifestStream, broken
from worker.manifest.values import DEFAULT_VOICEPRINT, lines_text, show

# Values that must agree across the rows of one enrollment.
_MERGED = ("model", "minAudios", "alias", "createIdentity", "existing", "retire")
_INDEX_CAPACITY_MAX = 1 << 22  # beyond, the index grows: a bound of blank lines is no row
_RECENT_KEYS = 4096  # exact keys remembered: rows of one enrollment usually stand together

# Opens the manifest's bytes afresh: the file again, or the bytes of a text in memory.
Opener = Callable[[], contextlib.AbstractContextManager[IO[bytes]]]


@dataclass
class _Row:
    line: int
    values: dict[str, str]  # JSON-style name -> stripped, non-blank cell
    original: dict[str, str]  # header as written -> cell as written
    cells: int  # how many cells the row has


@dataclass
class _Layout:
    """What the first pass keeps: the header and where each enrollment's rows are."""

    header: list[str]
    columns: dict[str, int]  # JSON-style name -> column index
    table: RowTable
    delimiter: str = ","  # as the header uses it: ",", ";" or a tab

    def names(self) -> dict[str, str]:
        names = {"audios": self.header[self.columns["audio"]]}
        names.update({name: self.header[i] for name, i in self.columns.items()})
        return names

    def row(self, cells: list[str], line: int) -> _Row:
        original = {h: (cells[i] if i < len(cells) else "") for i, h in enumerate(self.header)}
        values = {
            name: cells[i].strip()
            for name, i in self.columns.items()
            if i < len(cells) and cells[i].strip()
        }
        return _Row(line=line, values=values, original=original, cells=len(cells))

    def key(self, cells: list[str], defaults: ManifestDefaults) -> str | None:
        """The enrollment a row belongs to; None when it names no identity (it stands alone)."""

        def cell(name: str) -> str | None:
            i = self.columns.get(name)
            return (cells[i].strip() or None) if i is not None and i < len(cells) else None

        identity = cell("identity")
        if identity is None:
            return None
        owner, space = cell("owner") or defaults.owner, cell("space") or defaults.space
        return repr((owner, space, identity, cell("voiceprint") or DEFAULT_VOICEPRINT))

    def ragged(self, cells: list[str]) -> bool:
        n = len(self.header)
        return len(cells) > n and any(c.strip() for c in cells[n:])


def stream_csv_bytes(data: bytes, file: str, defaults: ManifestDefaults) -> ManifestStream:
    """A CSV manifest already read and decoded once (`read._decode` passed it)."""
    start = len(BOM) if data.startswith(BOM) else 0
    return stream_csv_source(lambda: io.BytesIO(data), file, defaults, start=start)


def stream_csv_source(
    open_source: Opener,
    file: str,
    defaults: ManifestDefaults,
    *,
    start: int = 0,
    check_bytes: bool = False,
) -> ManifestStream:
    """Two passes over the bytes `open_source()` gives (see the module docstring).

    `check_bytes`: the file was not decoded yet, so this pass says whether it is UTF-8 and not
    blank, the problems `read._decode` gives a file read whole.
    """
    with contextlib.ExitStack() as stack:
        fh = stack.enter_context(open_source())
        scan = scan_bytes(fh, start)
        if check_bytes and (problem := _bytes_problem(scan, file)):
            return broken(file, defaults, [problem], kind=None)
        layout = _first_pass(fh, start, scan.lines, file, defaults, stack, open_source)
    if isinstance(layout, ManifestStream):
        return layout
    table = layout.table

    def generate(builder: Builder) -> Iterator[ManifestItem]:
        with open_source() as again, open_source() as aside:
            cands = _candidates(layout, Records(again, start, layout.delimiter), file)
            lookup = _lookup(layout, Records(aside, start, layout.delimiter), file, defaults)
            yield from build_each(
                builder, cands, lookup=lookup, unique_keys=True, expected=table.rows
            )

    return ManifestStream(
        file=file,
        defaults=defaults,
        kind="csv",
        total=table.groups,
        csv_columns=layout.header,
        csv_delimiter=layout.delimiter,  # the failures CSV is written in it too
        field_names=layout.names(),
        generate=generate,
    )


def _bytes_problem(scan: Any, file: str) -> Problem | None:
    if scan.bad_utf8 is not None:
        offset, byte, line = scan.bad_utf8
        return Problem(
            file=file,
            place=f"line {line}",
            reason=f"not UTF-8 text (byte 0x{byte:02x} at offset {offset}); save the file as UTF-8",
        )
    return Problem(file=file, reason="is empty") if scan.blank else None


class _Grouping:
    """key -> its enrollment (a group of rows), on 64-bit hashes confirmed on the first row."""

    def __init__(self, layout: _Layout, bound: int, confirm: Callable[[int, str], bool]):
        self.table = layout.table
        self.index = KeyIndex(capacity=min(bound, _INDEX_CAPACITY_MAX))
        self.recent: dict[str, int] = {}
        self.exact: dict[str, int] = {}  # keys whose hash another key took first
        self.confirm = confirm  # (group, key): whether the group's first row has this key

    def add(self, key: str, row: int) -> None:
        group = self.recent.get(key)
        if group is None:
            group = self.exact.get(key)
        if group is None:
            found = self.index.get(key)
            if found is not None and self.confirm(found, key):
                group = found
            else:
                group = self.table.new_group(row)
                if found is None:
                    self.index.setdefault(key, group)
                else:
                    self.exact[key] = group
                self._recent(key, group)
                return
        self.table.join(group, row)
        self._recent(key, group)

    def _recent(self, key: str, group: int) -> None:
        if len(self.recent) >= _RECENT_KEYS:
            self.recent.clear()
        self.recent[key] = group


def _first_pass(
    fh: IO[bytes],
    start: int,
    bound: int,
    file: str,
    defaults: ManifestDefaults,
    stack: contextlib.ExitStack,
    open_source: Opener,
) -> _Layout | ManifestStream:
    """The header and, per row, where it is and which enrollment it joins; or why the file
    cannot be used."""
    delimiter = header_delimiter(first_line(fh, start))
    records = Records(fh, start, delimiter)
    layout: _Layout | None = None
    grouping: _Grouping | None = None
    prev_line = 0
    try:
        for cells in records:
            line, prev_line = prev_line + 1, records.line_num
            if not any(c.strip() for c in cells):
                continue
            if layout is None:
                columns: dict[str, int] = {}
                if problems := header_problems(cells, columns, file, line):
                    return broken(file, defaults, problems, kind="csv", header=cells)
                layout = _Layout(cells, columns, RowTable(bound), delimiter)
                confirm = _confirmer(layout, stack, open_source, start, defaults)
                grouping = _Grouping(layout, bound, confirm)
                continue
            _place_row(layout, grouping, cells, records.start, line, defaults)
    except csv.Error as exc:
        problem = Problem(
            file=file, place=f"line {records.line_num}", reason=f"not valid CSV: {exc}"
        )
        return broken(
            file, defaults, [problem], kind="csv", header=layout.header if layout else None
        )
    if layout is None:  # only blank rows or empty cells: a spreadsheet export of nothing
        reason = "is empty: no header row (identity, audio) and no enrollments"
        return broken(file, defaults, [Problem(file=file, reason=reason)], kind="csv")
    if not layout.table.groups:
        reason = "no enrollments (the file has only a header row)"
        problems = [Problem(file=file, reason=reason)]
        return broken(file, defaults, problems, kind="csv", header=layout.header)
    layout.table.done()
    return layout


def _place_row(
    layout: _Layout,
    grouping: _Grouping | None,
    cells: list[str],
    offset: int,
    line: int,
    defaults: ManifestDefaults,
) -> None:
    table = layout.table
    row = table.add_row(offset, line)
    if layout.ragged(cells):
        table.new_group(row, ragged=True)  # rejected alone: its cells cannot be trusted
        return
    key = layout.key(cells, defaults)
    if key is None or grouping is None:
        table.new_group(row)  # no identity: cannot be grouped, each stands alone
        return
    grouping.add(key, row)


def _confirmer(
    layout: _Layout,
    stack: contextlib.ExitStack,
    open_source: Opener,
    start: int,
    defaults: ManifestDefaults,
) -> Callable[[int, str], bool]:
    """Reads a group's first row again (on a handle of its own, opened at the first need)."""
    records: list[Records] = []

    def confirm(group: int, key: str) -> bool:
        if not records:
            records.append(Records(stack.enter_context(open_source()), start, layout.delimiter))
        offset = int(layout.table.offsets[layout.table.first[group]])
        return layout.key(records[0].at(offset), defaults) == key

    return confirm


def _read_group(layout: _Layout, records: Records, group: int) -> list[_Row]:
    table = layout.table
    return [
        layout.row(records.at(int(table.offsets[r])), int(table.lines[r]))
        for r in table.rows_of(group)
    ]


def _candidates(layout: _Layout, records: Records, file: str) -> Iterator[Candidate]:
    """The second pass: each enrollment's rows read again, in the order of first lines."""
    names = layout.names()
    for group in range(layout.table.groups):
        yield _candidate(layout, _read_group(layout, records, group), group, file, names)


def _lookup(
    layout: _Layout, records: Records, file: str, defaults: ManifestDefaults
) -> Callable[[int], ManifestItem | None]:
    """The enrollment whose first line is `position`, built again (to confirm a hash hit)."""
    names = layout.names()
    scratch = Builder(file, defaults, names)

    def at(position: int) -> ManifestItem | None:
        group = layout.table.group_at_line(position)
        if group is None:
            return None
        rows = _read_group(layout, records, group)
        return scratch.build(_candidate(layout, rows, group, file, names))

    return at


def _candidate(
    layout: _Layout, group: list[_Row], index: int, file: str, names: dict[str, str]
) -> Candidate:
    if layout.table.ragged[index]:
        return _ragged(group[0], len(layout.header), file)
    lines = [r.line for r in group]
    place = lines_text(lines)
    first = group[0].values
    values: dict[str, Any] = {
        k: first[k] for k in ("owner", "space", "identity", "voiceprint") if k in first
    }
    cand = Candidate(
        source=place,
        place=place,
        position=lines[0],
        values=values,
        audios=[
            AudioIn(r.values.get("audio", ""), "audio", f"line {r.line}", r.values.get("channel"))
            for r in group
        ],
        rows=tuple(r.original for r in group),
        row_lines=tuple(lines),
    )
    _merge(cand, group, file, names)
    return cand


def _merge(cand: Candidate, group: list[_Row], file: str, names: dict[str, str]) -> None:
    """model, minAudios, alias, createIdentity, existing, retire: once, or alike on every row."""
    for name in _MERGED:
        seen: dict[str, int] = {}
        for r in group:
            if name in r.values:
                seen.setdefault(r.values[name], r.line)
        if len(seen) > 1:
            listed = ", ".join(f"{show(v)} on line {n}" for v, n in seen.items())
            cand.preset.append(
                Problem(
                    file=file,
                    place=cand.place,
                    field=names.get(name, name),
                    reason=f"rows of one enrollment disagree: {listed}",
                )
            )
        elif seen:
            cand.values[name] = next(iter(seen))


def _ragged(row: _Row, columns: int, file: str) -> Candidate:
    """A row with more cells than the header: rejected alone, its cells cannot be trusted."""
    place = f"line {row.line}"
    reason = f"has {row.cells} cells but the header has {columns}; quote cells that contain commas"
    cand = Candidate(
        source=place,
        place=place,
        position=row.line,
        values={},
        audios=[],
        rows=(row.original,),
        row_lines=(row.line,),
        broken=True,
    )
    cand.preset.append(Problem(file=file, place=place, reason=reason))
    return cand
