"""Where an export writes: a Google spreadsheet (gspread) or a local .xlsx workbook (openpyxl).

Both implement `SheetTarget`, the few operations the export needs, so everything above this module
(layout, reconciliation, row map, cell limit) is one code path. Rows are lists of typed cells from
column A; `None` means "leave this cell alone" (a column the export does not own), "" clears a cell.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import gspread
import requests
from gspread.exceptions import APIError
from gspread.http_client import HTTPClient
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from fieldpipe.config import Settings, var_dir
from fieldpipe.pipelines.names import GOOGLE_SHEETS_CONN
from fieldpipe.ratelimit import RateLimiter
from fieldpipe.sheets.quota import RetryPolicy

log = logging.getLogger(__name__)

GOOGLE_API_BASE = "https://sheets.googleapis.com/v4/spreadsheets"
SCOPES = ["https://www.googleapis.com/auth/spreadsheets"]
MAX_REQUEST_BYTES = 1_800_000  # Google recommends about 2 MB a request; keep a margin for the envelope


class WriteOutcomeUnknown(Exception):
    """A write failed in a way that may have applied it: reconcile against the sheet before writing again."""


@dataclass
class GridSize:
    rows: int
    columns: int


def column_letters(n: int) -> str:
    letters = ""
    while n:
        n, rem = divmod(n - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def a1(title: str, ref: str = "") -> str:
    quoted = "'" + title.replace("'", "''") + "'"
    return f"{quoted}!{ref}" if ref else quoted


class SheetTarget(ABC):
    name: str  # stable identity of the destination, part of the export state's key

    @abstractmethod
    def worksheets(self) -> dict[str, GridSize]:
        """Every tab with its grid size, in tab order."""

    @abstractmethod
    def add_worksheet(self, title: str, columns: int) -> None: ...

    @abstractmethod
    def read_lines(self, reads: list[tuple[str, str, int]]) -> list[list[Any]]:
        """For each (title, "row" | "column", 1-based index) the cells of that line from its first cell."""

    @abstractmethod
    def write_rows(self, title: str, rows: Mapping[int, list[Any]]) -> None:
        """Overwrite existing rows (row number -> cells from column A)."""

    @abstractmethod
    def append_rows(self, title: str, start_row: int, rows: list[list[Any]]) -> list[int]:
        """Add rows at `start_row` or after it; return the row number each landed on."""

    @abstractmethod
    def clear(self, title: str) -> None: ...

    def close(self) -> None:
        """Make the writes durable (the workbook is saved here)."""

    @property
    def request_count(self) -> int:
        return 0

    def present_table(self, title: str, rows: int, *, percent_columns: tuple[int, ...] = (),
                      chart: "PassRateChart | None" = None) -> None:
        """Format a whole-tab table just written (header plus `rows` rows): percentages, and a chart."""


@dataclass(frozen=True)
class PassRateChart:
    """A bar chart of a 0..1 column (1-based `value_column`) against a label column over the table's first
    `rows` data rows, placed beside the table."""

    title: str
    label_column: int
    value_column: int
    rows: int


# -- Google Sheets -------------------------------------------------------------------------------------

class SheetsHTTPClient(HTTPClient):
    """gspread's HTTP client with a configurable API base URL, a rate limiter (none: unlimited) and retries."""

    def __init__(self, auth: Any, session: requests.Session | None = None, *, base_url: str = GOOGLE_API_BASE,
                 limiter: RateLimiter | None = None, retry: RetryPolicy | None = None):
        super().__init__(auth, session)
        self.base_url = base_url.rstrip("/")
        self.limiter = limiter
        self.retry = retry or RetryPolicy.from_env()
        self.request_count = 0

    def request(self, method: str, endpoint: str, params: Any = None, data: Any = None, json: Any = None,
                files: Any = None, headers: Any = None) -> requests.Response:
        if endpoint.startswith(GOOGLE_API_BASE):
            endpoint = self.base_url + endpoint[len(GOOGLE_API_BASE):]
        # An append or a spreadsheet batchUpdate answered 5xx may have been applied: not retried blindly.
        idempotent = method.lower() in ("get", "put") or endpoint.endswith(
            ("/values:batchUpdate", "/values:batchClear", ":clear"))

        def send() -> requests.Response:
            self.request_count += 1
            return self.session.request(method=method, url=endpoint, json=json, params=params, data=data,
                                        files=files, headers=headers, timeout=self.timeout)

        response = self.retry.send(send, idempotent, self.limiter)
        if response.ok:
            return response
        raise APIError(response)


def sheets_client(session: requests.Session | None = None, credentials: Any = None, *,
                  base_url: str = GOOGLE_API_BASE, limiter: RateLimiter | None = None,
                  retry: RetryPolicy | None = None) -> gspread.Client:
    """A gspread client over our HTTP client (pass `session` for an unauthenticated local stand-in)."""
    client = gspread.Client(auth=credentials, session=session)
    client.http_client = SheetsHTTPClient(credentials, session, base_url=base_url, limiter=limiter, retry=retry)
    client.http_client.set_timeout((10, 120))
    return client


def client_from_connection(password: str | None, extra: Mapping[str, Any] | None,
                           limiter: RateLimiter | None = None) -> gspread.Client:
    """A client from the `google_sheets` connection's fields (format in docs/sheets.md).

    The service-account key JSON is in extra `keyfile_dict` (object or JSON string) or in the password;
    extra `base_url` (or FIELDPIPE_SHEETS_BASE_URL) points at another Sheets-v4 server. Only a server
    other than Google's may be used without a key (the local stand-in).
    """
    extra = dict(extra or {})
    base_url = extra.get("base_url") or Settings.from_env().sheets.base_url or GOOGLE_API_BASE
    key = extra.get("keyfile_dict") or password or None
    if isinstance(key, str):
        key = json.loads(key)
    if key is None:
        if base_url.startswith(GOOGLE_API_BASE):
            raise ValueError(f"connection {GOOGLE_SHEETS_CONN!r} has no service-account key (extra keyfile_dict or password)")
        return sheets_client(requests.Session(), base_url=base_url, limiter=limiter)
    from google.auth.transport.requests import AuthorizedSession
    from google.oauth2.service_account import Credentials

    credentials = Credentials.from_service_account_info(key, scopes=SCOPES)
    return sheets_client(AuthorizedSession(credentials), credentials, base_url=base_url, limiter=limiter)


def encode_for_sheets(value: Any) -> Any:
    """USER_ENTERED input: numbers, booleans and dates typed; every text kept as text by a leading
    apostrophe, so an answer like "=HYPERLINK(...)" or "+91..." is never parsed as a formula or number."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.date):
        return value.isoformat()
    text = str(value)
    return "'" + text if text else ""


def _chunks_by_size(rows: list[list[Any]], max_bytes: int) -> list[list[list[Any]]]:
    """Consecutive runs of rows whose JSON stays under `max_bytes` (as requests will encode it)."""
    chunks: list[list[list[Any]]] = [[]]
    size = 0
    for row in rows:
        row_size = len(json.dumps(row)) + 1
        if chunks[-1] and size + row_size > max_bytes:
            chunks.append([])
            size = 0
        chunks[-1].append(row)
        size += row_size
    return [c for c in chunks if c]


class GoogleSheetsTarget(SheetTarget):
    def __init__(self, client: gspread.Client, spreadsheet_id: str, max_request_bytes: int = MAX_REQUEST_BYTES):
        self.http: SheetsHTTPClient = client.http_client
        self.spreadsheet_id = spreadsheet_id
        self.name = f"google:{spreadsheet_id}"
        self.max_request_bytes = max_request_bytes
        self._sheets: dict[str, dict] = {}

    @property
    def request_count(self) -> int:
        return self.http.request_count

    def worksheets(self) -> dict[str, GridSize]:
        metadata = self.http.fetch_sheet_metadata(self.spreadsheet_id)
        self._sheets = {s["properties"]["title"]: s["properties"] for s in metadata["sheets"]}
        return {title: GridSize(p["gridProperties"]["rowCount"], p["gridProperties"]["columnCount"])
                for title, p in self._sheets.items()}

    def add_worksheet(self, title: str, columns: int) -> None:
        reply = self.http.batch_update(self.spreadsheet_id, {"requests": [{"addSheet": {"properties": {
            "title": title, "gridProperties": {"rowCount": 1, "columnCount": columns}}}}]})
        self._sheets[title] = reply["replies"][0]["addSheet"]["properties"]

    def read_lines(self, reads: list[tuple[str, str, int]]) -> list[list[Any]]:
        ranges = [a1(title, f"{index}:{index}" if kind == "row" else f"{column_letters(index)}:{column_letters(index)}")
                  for title, kind, index in reads]
        result = self.http.values_batch_get(self.spreadsheet_id, ranges,
                                            params={"valueRenderOption": "FORMATTED_VALUE"})
        lines = []
        for (_, kind, _), value_range in zip(reads, result["valueRanges"]):
            values = value_range.get("values", [])
            lines.append((values[0] if values else []) if kind == "row" else [v[0] if v else "" for v in values])
        return lines

    def _ensure_columns(self, title: str, columns: int) -> None:
        """Writes outside the grid fail on Google: widen it first (appends widen it themselves)."""
        props = self._sheets.get(title)
        if props is None or props["gridProperties"]["columnCount"] >= columns:
            return
        missing = columns - props["gridProperties"]["columnCount"]
        self.http.batch_update(self.spreadsheet_id, {"requests": [{"appendDimension": {
            "sheetId": props["sheetId"], "dimension": "COLUMNS", "length": missing}}]})
        props["gridProperties"]["columnCount"] = columns

    def write_rows(self, title: str, rows: Mapping[int, list[Any]]) -> None:
        if not rows:
            return
        self._ensure_columns(title, max(len(r) for r in rows.values()))
        data = [{"range": a1(title, f"A{number}"), "values": [[encode_for_sheets(v) for v in cells]]}
                for number, cells in sorted(rows.items())]
        chunk: list[dict] = []
        size = 0
        for item in data:
            item_size = len(json.dumps(item)) + 1
            if chunk and size + item_size > self.max_request_bytes:
                self._batch_update_values(chunk)
                chunk, size = [], 0
            chunk.append(item)
            size += item_size
        self._batch_update_values(chunk)

    def _batch_update_values(self, data: list[dict]) -> None:
        self.http.values_batch_update(self.spreadsheet_id, {"valueInputOption": "USER_ENTERED", "data": data})

    def append_rows(self, title: str, start_row: int, rows: list[list[Any]]) -> list[int]:
        landed: list[int] = []
        for chunk in _chunks_by_size([[encode_for_sheets(v) for v in row] for row in rows], self.max_request_bytes):
            try:
                reply = self.http.values_append(
                    self.spreadsheet_id, a1(title, f"A{start_row}"),
                    params={"valueInputOption": "USER_ENTERED", "insertDataOption": "INSERT_ROWS",
                            "includeValuesInResponse": "false"},
                    body={"majorDimension": "ROWS", "values": chunk})
            except (APIError, requests.RequestException) as err:
                status = getattr(getattr(err, "response", None), "status_code", None)
                if status is not None and status < 500 and status != 429:
                    raise  # rejected outright (bad request, no access): nothing was written
                raise WriteOutcomeUnknown(f"append to {title!r} failed ({err}); it may have been applied") from err
            first = int("".join(ch for ch in reply["updates"]["updatedRange"].rsplit("!", 1)[1].split(":")[0]
                                if ch.isdigit()))
            landed += range(first, first + len(chunk))
            start_row = first + len(chunk)
        return landed

    def clear(self, title: str) -> None:
        self.http.values_clear(self.spreadsheet_id, a1(title))

    def present_table(self, title: str, rows: int, *, percent_columns: tuple[int, ...] = (),
                      chart: PassRateChart | None = None) -> None:
        """Frozen header, percent format, and the chart replaced (not added again) in one batchUpdate."""
        metadata = self.http.fetch_sheet_metadata(
            self.spreadsheet_id, params={"fields": "sheets(properties(sheetId,title),charts(chartId))"})
        sheet = next(s for s in metadata["sheets"] if s["properties"]["title"] == title)
        sheet_id = sheet["properties"]["sheetId"]
        requests_: list[dict] = [{"updateSheetProperties": {
            "properties": {"sheetId": sheet_id, "gridProperties": {"frozenRowCount": 1}},
            "fields": "gridProperties.frozenRowCount"}}]
        requests_ += [{"repeatCell": {
            "range": {"sheetId": sheet_id, "startRowIndex": 1, "endRowIndex": rows + 1,
                      "startColumnIndex": column - 1, "endColumnIndex": column},
            "cell": {"userEnteredFormat": {"numberFormat": {"type": "PERCENT", "pattern": "0.0%"}}},
            "fields": "userEnteredFormat.numberFormat"}} for column in percent_columns]
        if chart is not None:
            requests_ += [{"deleteEmbeddedObject": {"objectId": c["chartId"]}} for c in sheet.get("charts", [])]
            requests_.append({"addChart": {"chart": _google_chart(sheet_id, chart)}})
        self.http.batch_update(self.spreadsheet_id, {"requests": requests_})


def _google_chart(sheet_id: int, chart: PassRateChart) -> dict:
    def column(index: int) -> dict:
        return {"sourceRange": {"sources": [{"sheetId": sheet_id, "startRowIndex": 0, "endRowIndex": chart.rows + 1,
                                             "startColumnIndex": index - 1, "endColumnIndex": index}]}}

    return {
        "spec": {"title": chart.title, "basicChart": {
            "chartType": "BAR", "legendPosition": "NO_LEGEND", "headerCount": 1,
            "axis": [{"position": "BOTTOM_AXIS", "title": "Students passing"}],
            "domains": [{"domain": column(chart.label_column)}],
            "series": [{"series": column(chart.value_column), "targetAxis": "BOTTOM_AXIS"}]}},
        "position": {"overlayPosition": {"anchorCell": {"sheetId": sheet_id, "rowIndex": 1,
                                                        "columnIndex": chart.value_column + 4}}},
    }


# -- local .xlsx ---------------------------------------------------------------------------------------

class XlsxTarget(SheetTarget):
    """A workbook per form under var/exports/, written on `close()` (atomically, via a temporary file)."""

    def __init__(self, path: Path):
        from openpyxl import Workbook, load_workbook

        self.path = Path(path)
        self.name = f"xlsx:{self.path.name}"
        self._percent_columns: dict[str, tuple[int, ...]] = {}
        if self.path.exists():
            self.book = load_workbook(self.path)
        else:
            self.book = Workbook()
            self.book.remove(self.book.active)

    @classmethod
    def for_form(cls, slug: str) -> "XlsxTarget":
        return cls(var_dir() / "exports" / f"{slug}.xlsx")

    def worksheets(self) -> dict[str, GridSize]:
        return {ws.title: GridSize(ws.max_row, ws.max_column) for ws in self.book.worksheets}

    def add_worksheet(self, title: str, columns: int) -> None:
        self.book.create_sheet(title)

    def read_lines(self, reads: list[tuple[str, str, int]]) -> list[list[Any]]:
        lines = []
        for title, kind, index in reads:
            ws = self.book[title]
            if kind == "row":
                cells = [c.value for c in ws[index]] if ws.max_row >= index else []
            else:
                cells = [ws.cell(row=r, column=index).value for r in range(1, ws.max_row + 1)]
            values = ["" if v is None else (v if isinstance(v, str) else str(v)) for v in cells]
            while values and values[-1] == "":
                values.pop()
            lines.append(values)
        return lines

    def _put(self, ws: Any, row: int, cells: list[Any]) -> None:
        for col, value in enumerate(cells, start=1):
            if value is None:  # a column we do not own
                continue
            cell = ws.cell(row=row, column=col)
            if isinstance(value, str):
                # Text stays text (never a formula), and characters a workbook cannot hold (rows stored before
                # the API refused them) show as U+FFFD instead of failing the form's export.
                cell.value = ILLEGAL_CHARACTERS_RE.sub("\ufffd", value) or None
                if cell.value is not None:
                    cell.data_type = "s"
            else:
                cell.value = value
            if isinstance(value, dt.datetime):
                cell.number_format = "yyyy-mm-dd hh:mm:ss"
            elif isinstance(value, dt.date):
                cell.number_format = "yyyy-mm-dd"

    def write_rows(self, title: str, rows: Mapping[int, list[Any]]) -> None:
        ws = self.book[title]
        for number, cells in rows.items():
            self._put(ws, number, cells)

    def append_rows(self, title: str, start_row: int, rows: list[list[Any]]) -> list[int]:
        ws = self.book[title]
        first = max(start_row, self._last_row(ws) + 1)
        for offset, cells in enumerate(rows):
            self._put(ws, first + offset, cells)
        return list(range(first, first + len(rows)))

    @staticmethod
    def _last_row(ws: Any) -> int:
        for row in range(ws.max_row, 0, -1):
            if any(c.value not in (None, "") for c in ws[row]):
                return row
        return 0

    def clear(self, title: str) -> None:
        index = self.book.index(self.book[title])
        self.book.remove(self.book[title])
        self.book.create_sheet(title, index)

    def present_table(self, title: str, rows: int, *, percent_columns: tuple[int, ...] = (),
                      chart: PassRateChart | None = None) -> None:
        self._percent_columns[title] = percent_columns
        if chart is not None:
            from openpyxl.utils import get_column_letter

            from fieldpipe.reporting.workbook import pass_rate_chart

            pass_rate_chart(self.book[title], label_column=chart.label_column, value_column=chart.value_column,
                            rows=chart.rows, title=chart.title, anchor=f"{get_column_letter(chart.value_column + 5)}2")

    def close(self) -> None:
        from fieldpipe.reporting.workbook import style_table

        for ws in self.book.worksheets:  # every tab reads as a table: frozen bold header, filters, widths
            style_table(ws, self._percent_columns.get(ws.title, ()))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".xlsx.tmp")
        self.book.save(temporary)
        os.replace(temporary, self.path)


# -- choosing a target ---------------------------------------------------------------------------------


def open_target(form_slug: str, sheet_settings: Mapping[str, Any],
                connection: tuple[str | None, dict] | None, limiter: RateLimiter | None = None) -> SheetTarget:
    """Google through the connection, or the local workbook var/exports/<slug>.xlsx when there is no
    connection or it says `{"backend": "xlsx"}` (what `make up` configures)."""
    if connection is None or connection[1].get("backend") == "xlsx":
        return XlsxTarget.for_form(form_slug)
    if not sheet_settings.get("spreadsheet_id"):
        raise ValueError(f"form {form_slug!r}: settings.sheet.spreadsheet_id is needed to export to Google Sheets")
    return GoogleSheetsTarget(client_from_connection(*connection, limiter), sheet_settings["spreadsheet_id"])


def write_table(target: SheetTarget, title: str, header: list[str], rows: list[list[Any]], attempts: int = 3, *,
                percent_columns: tuple[int, ...] = (), chart: PassRateChart | None = None) -> int:
    """Replace the whole content of tab `title` (created when missing) with `header` and `rows`.

    For tabs other features own (e.g. an assessments `Summary`): rows are typed cells as in the export.
    Rerunning it is safe, since it replaces rather than adds. Returns the number of data rows written.
    """
    for attempt in range(attempts):
        if title in target.worksheets():
            target.clear(title)
        else:
            target.add_worksheet(title, len(header))
        try:
            target.append_rows(title, 1, [list(header)] + [list(r) for r in rows])
            break
        except WriteOutcomeUnknown:
            if attempt + 1 == attempts:
                raise
    target.present_table(title, len(rows), percent_columns=percent_columns, chart=chart)
    target.close()
    return len(rows)
