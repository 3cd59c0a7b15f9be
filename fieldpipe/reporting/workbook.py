"""Analyst-ready worksheets: a frozen bold header, filters, sensible widths, dates and percentages formatted.

Used by the XLSX download (a write-only workbook, streamed row by row) and by the local Sheets stand-in's
workbook (`sheets.targets.XlsxTarget`), so both look the same when opened. Text is always stored as text:
a cell starting with "=" stays the characters the collector typed, never a live formula.
"""

from __future__ import annotations

import datetime as dt
from typing import IO, Any, Iterable, Sequence

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.chart import BarChart, Reference
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

HEADER_FONT = Font(bold=True)
DATE_FORMAT = "yyyy-mm-dd"
DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
PERCENT_FORMAT = "0.0%"
MIN_WIDTH, MAX_WIDTH = 8, 50
WIDTHS = {"uuid": 38, "timestamptz": 20, "date": 12, "integer": 10, "numeric": 12, "boolean": 8}


def number_format(value: Any, percent: bool = False) -> str | None:
    if isinstance(value, dt.datetime):
        return DATETIME_FORMAT
    if isinstance(value, dt.date):
        return DATE_FORMAT
    if percent and isinstance(value, (int, float)) and not isinstance(value, bool):
        return PERCENT_FORMAT
    return None


def _width(label: str, sql_type: str = "text") -> float:
    return max(MIN_WIDTH, min(MAX_WIDTH, max(len(label) + 2, WIDTHS.get(sql_type, 18))))


def _text_cell(cell) -> None:
    """Keep a string that looks like a formula as the string (openpyxl would store "=..." as a formula)."""
    if isinstance(cell.value, str) and cell.value.startswith("="):
        cell.data_type = "s"


def write_workbook(out: IO[bytes], sheets: Iterable[tuple[str, Sequence, Iterable[Sequence[Any]]]]) -> None:
    """A workbook of (title, columns, rows) sheets, each column with .name, .label and .sql_type, written to `out`."""
    book = Workbook(write_only=True)
    for title, columns, rows in sheets:
        _write_sheet(book.create_sheet(title), columns, rows)
    book.save(out)


def _write_sheet(ws, columns: Sequence, rows: Iterable[Sequence[Any]]) -> None:
    ws.freeze_panes = "A2"
    for index, column in enumerate(columns, start=1):
        ws.column_dimensions[get_column_letter(index)].width = _width(column.label, column.sql_type)
    header = []
    for column in columns:
        cell = WriteOnlyCell(ws, value=column.name)
        cell.font = HEADER_FONT
        header.append(cell)
    ws.append(header)
    count = 0
    for row in rows:
        cells = []
        for value in row:
            cell = WriteOnlyCell(ws, value=value)
            _text_cell(cell)
            fmt = number_format(value)
            if fmt:
                cell.number_format = fmt
            cells.append(cell)
        ws.append(cells)
        count += 1
    ws.auto_filter.ref = f"A1:{get_column_letter(max(len(columns), 1))}{count + 1}"


def style_table(ws, percent_columns: Iterable[int] = ()) -> None:
    """Format a filled worksheet whose first row is its header (the local Sheets workbook's tabs);
    `percent_columns` are 1-based."""
    if ws.max_row < 1 or ws.max_column < 1:
        return
    percent_columns = set(percent_columns)
    ws.freeze_panes = "A2"
    header = [c.value for c in ws[1]]
    for index, label in enumerate(header, start=1):
        ws.cell(row=1, column=index).font = HEADER_FONT
        sample = ws.cell(row=2, column=index).value if ws.max_row > 1 else None
        kind = "timestamptz" if isinstance(sample, dt.datetime) else "date" if isinstance(sample, dt.date) else "text"
        ws.column_dimensions[get_column_letter(index)].width = _width(str(label or ""), kind)
        if index in percent_columns:
            for (cell,) in ws.iter_rows(min_row=2, min_col=index, max_col=index):
                if isinstance(cell.value, (int, float)):
                    cell.number_format = PERCENT_FORMAT
    ws.auto_filter.ref = ws.dimensions


def pass_rate_chart(ws, *, label_column: int, value_column: int, rows: int, title: str, anchor: str) -> None:
    """A bar chart of a percentage column (values 0..1) against a label column, placed at `anchor`."""
    chart = BarChart()
    chart.type = "bar"
    chart.title = title
    chart.y_axis.title = "Students passing"
    chart.y_axis.scaling.min = 0
    chart.y_axis.scaling.max = 1
    chart.y_axis.number_format = PERCENT_FORMAT
    chart.legend = None
    chart.add_data(Reference(ws, min_col=value_column, min_row=1, max_row=rows + 1), titles_from_data=True)
    chart.set_categories(Reference(ws, min_col=label_column, min_row=2, max_row=rows + 1))
    chart.height, chart.width = max(7.5, 0.6 * rows), 18
    ws.add_chart(chart, anchor)
