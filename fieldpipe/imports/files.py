"""Reading an import file: its format, its encoding and its rows, streamed from a local copy.

The object is first copied to a local temporary file (never held in memory) while its SHA-256 is
computed and, for CSV, its UTF-8 is checked: derived submission ids need the hash before the first row,
and a file in the wrong encoding must be refused before any of its rows is stored.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Sequence

CSV, XLSX = "csv", "xlsx"
COPY_CHUNK = 1024 * 1024
ZIP_MAGIC = b"PK\x03\x04"
DELIMITERS = (",", ";")
NOTE_MARK = "#"  # a row whose first cell starts with it is a note (the template's labels and hints)

csv.field_size_limit(1024 * 1024)  # long_text answers may be up to 100,000 characters


class Refused(Exception):
    """The whole file is refused; `code` is stable for clients, `errors` are (row, column, code, reason)."""

    def __init__(self, code: str, reason: str, errors: list[tuple[int, str, str, str]] | None = None):
        super().__init__(reason)
        self.code, self.reason, self.errors = code, reason, errors or []


@dataclass(frozen=True)
class Spooled:
    path: Path
    format: str
    sha256: str
    size: int


def file_format(file_name: str) -> str:
    suffix = Path(file_name).suffix.lower()
    if suffix == ".csv":
        return CSV
    if suffix == ".xlsx":
        return XLSX
    raise Refused("unsupported_format", f"{file_name!r} is neither a .csv nor a .xlsx file; "
                                        "save it as CSV UTF-8 or as an Excel workbook (.xlsx)")


def spool(stream: BinaryIO, folder: Path, file_name: str) -> Spooled:
    """Copy `stream` into `folder`, hashing it and checking that its content is what its name says."""
    fmt = file_format(file_name)
    path = folder / f"spooled.{fmt}"
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")() if fmt == CSV else None
    size = 0
    first = b""
    with open(path, "wb") as out:
        while chunk := stream.read(COPY_CHUNK):
            if not first:
                first = chunk[:4]
            digest.update(chunk)
            out.write(chunk)
            if decoder is not None:
                _check_text(decoder, chunk, size, final=False)
            size += len(chunk)
        if decoder is not None:
            _check_text(decoder, b"", size, final=True)
    if fmt == XLSX and size and first != ZIP_MAGIC:
        raise Refused("unsupported_format", f"{file_name!r} is not an Excel workbook (.xlsx)")
    return Spooled(path, fmt, digest.hexdigest(), size)


def _check_text(decoder, chunk: bytes, offset: int, final: bool) -> None:
    try:
        text = decoder.decode(chunk, final)
    except UnicodeDecodeError as err:
        raise Refused("wrong_encoding", f"the file is not UTF-8 text (byte {offset + err.start} cannot be read); "
                                        "save it as 'CSV UTF-8'") from None
    if "\x00" in text:
        raise Refused("unsupported_format", "the file holds binary data, not CSV text")


@contextmanager
def open_rows(spooled: Spooled) -> Iterator[tuple[list[Any], Iterator[tuple[int, Sequence[Any]]]]]:
    """(header cells, iterator of (row number, cells)) of the first sheet; blank rows and notes skipped.

    Row numbers count as a spreadsheet does: the header is row 1. An empty file has no header and no rows.
    """
    if spooled.size == 0:
        yield [], iter(())
        return
    if spooled.format == CSV:
        with open(spooled.path, encoding="utf-8-sig", newline="") as f:
            delimiter = _delimiter(f.readline())
            f.seek(0)
            yield _header_and_rows(csv.reader(f, delimiter=delimiter))
        return
    workbook = _open_workbook(spooled.path)
    try:
        yield _header_and_rows(workbook.worksheets[0].iter_rows(values_only=True))
    finally:
        workbook.close()


def _open_workbook(path: Path):
    from openpyxl import load_workbook

    try:
        return load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as err:
        raise Refused("unsupported_format", f"the file is not a readable Excel workbook (.xlsx): {type(err).__name__}") from None


def _delimiter(first_line: str) -> str:
    """Comma unless the header holds more semicolons (as Excel writes CSV where the decimal mark is a comma)."""
    return max(DELIMITERS, key=first_line.count) if first_line else ","


def blank_cell(cell: Any) -> bool:
    """An empty cell: none at all, or only white space."""
    return cell is None or (isinstance(cell, str) and (not cell or cell.isspace()))


def _blank(cells) -> bool:
    return all(map(blank_cell, cells))


def _header_and_rows(rows) -> tuple[list[Any], Iterator[tuple[int, Sequence[Any]]]]:
    numbered = enumerate(rows, start=1)
    for _, cells in numbered:
        if not _blank(cells):
            return list(cells), _data_rows(numbered)
    return [], iter(())


def _data_rows(numbered) -> Iterator[tuple[int, Sequence[Any]]]:
    for number, cells in numbered:
        first = cells[0] if cells else None
        if blank_cell(first):
            if _blank(cells):
                continue
        elif isinstance(first, str) and first.startswith(NOTE_MARK):
            continue
        yield number, cells
