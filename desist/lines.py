"""The physical lines of a CSV landing file, so that every one of them is accounted for.

A CSV reader counts records, not lines, and a stray quote makes it read the rest of a file
(or up to the next stray quote) as one long value: thousands of records vanish into one
malformed row, and "rows read = loaded + quarantined" still balances. So before a file is
read, :func:`scan` goes over its bytes once (vectorised, in blocks) and finds:

* the number of physical lines, the blank ones, and the over-long ones;
* the lines with an odd number of quote characters. A quoted value spanning lines opens on
  one such line and closes on the next; the pair is accepted as one record only when that
  record parses into the header's number of fields (:func:`plan`). Otherwise the opening
  line is a *bad line*: it is read as one malformed row on its own and the lines after it
  are read as the records they are.

Bad lines (unclosed quotes, lines longer than :data:`MAX_LINE_BYTES`) are replaced by a
placeholder in a temporary copy of the file for the CSV reader, then recorded as malformed
rows with their line number and text, so the reader never swallows or trips over them. The
expected record count is then ``lines - header - blank - continued``, and ingest checks the
reader's count against it.
"""
from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MAX_LINE_BYTES = 1 << 21  # longer lines are malformed rows (also the CSV reader's limit)
MAX_SPAN_LINES = 1_000  # a quoted value spanning more lines is taken for a stray quote
BLOCK = 1 << 25
NEWLINE, QUOTE, CR = 10, 34, 13
PLACEHOLDER = "\x02"  # starts the line written in place of a bad line in the reader's copy


@dataclass
class LineScan:
    size: int
    lines: int = 0
    blank: list[int] = field(default_factory=list)  # line numbers (from 1)
    odd_quotes: list[int] = field(default_factory=list)  # lines with an odd number of '"'
    long: dict[int, int] = field(default_factory=dict)  # line -> length in bytes
    newline: int = NEWLINE  # the byte ending a line: LF (and CRLF), or CR alone in old Mac files


def _newline(path: Path) -> int:
    head = _head(path)
    return CR if CR in head and NEWLINE not in head else NEWLINE


def scan(path: Path) -> LineScan:
    """One pass over the file's bytes: lines, blank lines, over-long lines, lines with odd quote counts."""
    result = LineScan(size=Path(path).stat().st_size, newline=_newline(path))
    offset, line_base, last_end, last_byte = 0, 0, -1, -1  # last_end: offset of the previous newline
    with open(path, "rb") as handle:
        while block := handle.read(BLOCK):
            data = np.frombuffer(block, np.uint8)
            newlines = np.flatnonzero(data == result.newline) + offset
            _lines_in_block(result, block, data, offset, newlines, line_base, last_end, last_byte)
            line_base += len(newlines)
            if len(newlines):
                last_end = int(newlines[-1])
            last_byte = int(data[-1])
            offset += len(block)
    if result.size and last_byte != result.newline:  # a last line without a newline
        _last_line(result, path, line_base + 1, last_end + 1)
        line_base += 1
    result.lines = line_base
    return result


def _lines_in_block(result: LineScan, block: bytes, data: np.ndarray, offset: int, ends: np.ndarray, line_base: int,
                    last_end: int, last_byte: int) -> None:
    if len(ends):
        starts = np.concatenate(([last_end + 1], ends[:-1] + 1))
        lengths = ends - starts
        # Only a line of at most one byte can be blank (a CR before the LF is not content) and only a
        # long one too long: the rest (nearly all) need no closer look.
        maybe = np.flatnonzero((lengths <= 1) | (lengths > MAX_LINE_BYTES))
        if len(maybe):
            maybe_ends = ends[maybe]
            before = np.where(maybe_ends - 1 >= offset, data[np.maximum(maybe_ends - 1 - offset, 0)], last_byte)
            content = lengths[maybe] - ((before == CR) & (result.newline == NEWLINE))
            numbers = line_base + 1 + maybe
            result.blank.extend(numbers[content == 0].tolist())
            too_long = content > MAX_LINE_BYTES
            result.long.update(zip(numbers[too_long].tolist(), content[too_long].tolist()))
    if QUOTE in block:  # bytes search: no pass over an array for the files (nearly all) without quotes
        quotes = np.flatnonzero(data == QUOTE) + offset
        # a quote after the block's last newline belongs to the line ending in a later block
        line_of = line_base + 1 + np.searchsorted(ends, quotes)
        numbers, counts = np.unique(line_of, return_counts=True)
        result.odd_quotes.extend(numbers[counts % 2 == 1].tolist())


def _last_line(result: LineScan, path: Path, number: int, start: int) -> None:
    """The last line, when no newline ends it."""
    content = result.size - start - (result.newline == NEWLINE and _read(path, result.size - 1, result.size) == b"\r")
    if content == 0:
        result.blank.append(number)
    if content > MAX_LINE_BYTES:
        result.long[number] = content


def merge_odd_quotes(odd: list[int]) -> list[int]:
    """Lines with an odd quote count, once each (a line crossing a block boundary is counted in two blocks)."""
    counts: dict[int, int] = {}
    for number in odd:
        counts[number] = counts.get(number, 0) + 1
    return sorted(number for number, n in counts.items() if n % 2 == 1)


@dataclass(frozen=True)
class BadLine:
    line: int
    start: int
    end: int
    reason: str


@dataclass(frozen=True)
class LinePlan:
    """How the file's lines become records."""

    lines: int
    header_lines: int
    blank_lines: list[int]  # outside quoted values: the reader skips them
    spans: list[tuple[int, int]]  # (first, last) line of each record spanning several lines
    bad: list[BadLine]

    @property
    def blank(self) -> int:
        return len(self.blank_lines)

    @property
    def continued(self) -> int:
        """Lines inside a record that started on an earlier line."""
        return sum(last - first for first, last in self.spans)

    @property
    def records(self) -> int:
        return max(self.lines - self.header_lines - self.blank - self.continued, 0)

    def source_row(self, line: int) -> int:
        """The record number (from 1, as ingest counts rows) of the record starting on `line`."""
        skipped = sum(n < line for n in self.blank_lines) + sum(last - first for first, last in self.spans
                                                                 if last < line)
        return line - self.header_lines - skipped


def _line_offsets(path: Path, numbers: list[int], newline: int = NEWLINE) -> dict[int, tuple[int, int]]:
    """Byte offsets (start, end without the newline) of the given lines, in one pass."""
    wanted = sorted(set(numbers))
    found: dict[int, tuple[int, int]] = {}
    if not wanted:
        return found
    offset, line, i = 0, 1, 0
    line_start = 0
    with open(path, "rb") as handle:
        while (block := handle.read(BLOCK)) and i < len(wanted):
            data = np.frombuffer(block, np.uint8)
            ends = np.flatnonzero(data == newline) + offset
            while i < len(wanted) and wanted[i] < line + len(ends):
                k = wanted[i] - line  # index of the line's newline in this block
                start = line_start if k == 0 else int(ends[k - 1]) + 1
                found[wanted[i]] = (start, int(ends[k]))
                i += 1
            if len(ends):
                line_start = int(ends[-1]) + 1
            line += len(ends)
            offset += len(block)
    size = Path(path).stat().st_size
    for number in wanted[i:]:  # the last line, without a newline
        found[number] = (line_start, size)
    return found


def _read(path: Path, start: int, end: int) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(start)
        return handle.read(end - start)


def _one_record(text: bytes, fields: int) -> bool:
    """True when `text` is exactly one CSV record of `fields` fields."""
    try:
        records = list(csv.reader(io.StringIO(text.decode("utf-8", errors="replace"), newline="")))
    except csv.Error:
        return False
    return len(records) == 1 and len(records[0]) == fields


def plan(path: Path, found: LineScan, header_fields: int) -> LinePlan:
    """Pair quote-opening lines into multi-line records, or mark them bad; count what the reader should read."""
    odd = merge_odd_quotes(found.odd_quotes)
    offsets = _line_offsets(path, [*odd, *found.long], found.newline)
    bad: list[BadLine] = []
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(odd):
        first = odd[i]
        if first in found.long:
            i += 1  # reported below as over-long
            continue
        if i + 1 < len(odd):
            last = odd[i + 1]
            start, end = offsets[first][0], offsets[last][1]
            if (last - first < MAX_SPAN_LINES and end - start <= MAX_LINE_BYTES
                    and not any(first < n <= last for n in found.long)
                    and _one_record(_read(path, start, end), header_fields)):
                spans.append((first, last))
                i += 2
                continue
        start, end = offsets[first]
        bad.append(BadLine(first, start, end, "opens a quoted value that it does not close"))
        i += 1
    for number, length in found.long.items():
        start, end = offsets[number]
        bad.append(BadLine(number, start, end, f"is {length:,} bytes long, more than the {MAX_LINE_BYTES:,} "
                                               "bytes a record may have"))
    bad.sort(key=lambda b: b.line)
    header_lines = next((last for first, last in spans if first == 1), 1) if found.lines else 0
    inside = [(first, last) for first, last in spans if first != 1]
    blank = [n for n in found.blank if n > header_lines and not any(first < n <= last for first, last in inside)]
    return LinePlan(found.lines, header_lines, blank, inside, bad)


def write_reader_copy(path: Path, bad: list[BadLine], copy: Path) -> None:
    """A copy of the file with every bad line replaced by ``PLACEHOLDER + its index``, line breaks kept."""
    with open(path, "rb") as source, open(copy, "wb") as target:
        position = 0
        for index, line in enumerate(bad):
            _copy_range(source, target, position, line.start)
            target.write(f"{PLACEHOLDER}{index}".encode())
            position = line.end - (_read(path, line.end - 1, line.end) == b"\r" and line.end > line.start)
        _copy_range(source, target, position, Path(path).stat().st_size)


def _copy_range(source, target, start: int, end: int) -> None:
    source.seek(start)
    remaining = end - start
    while remaining > 0:
        block = source.read(min(BLOCK, remaining))
        target.write(block)
        remaining -= len(block)


def bad_line_fields(path: Path, line: BadLine, limit: int = 1_000) -> list[str] | None:
    """The bad line split at every comma (quotes kept), to show what it held; None when over-long."""
    if line.end - line.start > MAX_LINE_BYTES:
        return None
    text = _read(path, line.start, line.end).decode("utf-8", errors="replace").rstrip("\r")
    return [value[:limit] for value in text.split(",")]


# ---------------------------------------------------------------- encoding

def byte_words(value: int) -> str:
    """A byte that is not UTF-8, with what it would be in Latin-1 / Windows-1252."""
    char = bytes([value]).decode("cp1252", errors="replace") if 0x80 <= value <= 0x9F else chr(value)
    return f"byte 0x{value:02X} ('{char}' in Latin-1/Windows-1252)"


def _head(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(1 << 16)


def is_utf16(path: Path) -> bool:
    """A UTF-16 byte-order mark, or NUL bytes in every other place as UTF-16 text without one has."""
    head = _head(path)
    return head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or (
        len(head) >= 4 and head.count(b"\x00") * 4 >= len(head))


def utf16_plan(path: Path) -> LinePlan:
    """The lines of a UTF-16 file (refused, but its rows are counted as rejected)."""
    text = Path(path).read_bytes().decode("utf-16", errors="replace").splitlines()
    blank = [number for number, line in enumerate(text[1:], start=2) if not line]
    return LinePlan(len(text), min(len(text), 1), blank, [], [])


def encoding_problem(path: Path) -> str | None:
    """Why the start of the file cannot be read as UTF-8 (UTF-16, or a header in another encoding), or None."""
    head = _head(path)
    if is_utf16(path):
        return "the file is UTF-16 encoded, not UTF-8"
    header = head.split(b"\n", 1)[0].removeprefix(codecs.BOM_UTF8)
    try:
        header.decode("utf-8")
    except UnicodeDecodeError as error:
        if "end of data" not in error.reason or len(header) < len(head):
            return (f"the file is not UTF-8: line 1 (the header) has {byte_words(header[error.start])}, "
                    "so it looks Latin-1 encoded")
    return None


def first_non_utf8(path: Path) -> tuple[int, int] | None:
    """(line, byte value) of the first byte that is not UTF-8, or None."""
    pending, lines_before = b"", 0
    with open(path, "rb") as handle:
        while block := handle.read(BLOCK):
            data = pending + block
            try:
                data.decode("utf-8")
                pending = b""
            except UnicodeDecodeError as error:
                if "end of data" in error.reason and error.start >= len(data) - 3:
                    pending = data[error.start:]
                    data = data[:error.start]
                else:
                    return lines_before + data.count(b"\n", 0, error.start) + 1, data[error.start]
            lines_before += data.count(b"\n")
    return None
