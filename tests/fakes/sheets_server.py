"""A local stand-in for the Google Sheets API v4, close enough that real gspread 6 works against it.

Threaded, on 127.0.0.1 and a free port. It keeps typed cells per worksheet and a grid size, and answers:
spreadsheets get and batchUpdate (addSheet, deleteSheet, appendDimension, deleteDimension,
updateSheetProperties, repeatCell, addChart, deleteEmbeddedObject), values get, batchGet, update, append,
batchUpdate, clear and batchClear.
Like Google it parses USER_ENTERED input (a leading apostrophe keeps text, ISO dates become dates,
numeric strings numbers), skips null cells on writes, refuses writes outside the grid except by append,
refuses a request member the v4 API does not define or an enum value it does not know (400, as Google's
"Unknown name" and "Invalid value" answers: a misspelt field is never silently ignored), and answers errors
as {"error": {"code", "message", "status"}}.

Tests inject failures with `fail_next(status, times, retry_after, after_apply, path_contains)` and read `request_count` / `requests`.
Run it by hand for `make up` (any spreadsheet id is created on first use):
`python -m tests.fakes.sheets_server --port 8099`; docs/sheets.md shows the connection to point at it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

API_PREFIX = "/v4/spreadsheets"
SERIAL_EPOCH = dt.date(1899, 12, 30)
DATE_INPUT = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DATETIME_INPUT = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
NUMBER_INPUT = re.compile(r"^[+-]?\d+(\.\d+)?$")
CELL_REF = re.compile(r"^([A-Z]*)(\d*)$")
STATUS_NAMES = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}


class ApiError(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


# -- the v4 request shapes we accept: the members the API defines (sheets.googleapis.com/$discovery/rest?version=v4)
# for the requests the stand-in serves. A dict is an object (its known members), a frozenset an enum, a one-item
# list an array of that shape, ANY a value not checked further.
ANY = None
DIMENSION = frozenset({"DIMENSION_UNSPECIFIED", "ROWS", "COLUMNS"})
AXIS_POSITION = frozenset({"BASIC_CHART_AXIS_POSITION_UNSPECIFIED", "BOTTOM_AXIS", "LEFT_AXIS", "RIGHT_AXIS"})
GRID_RANGE = {"sheetId": ANY, "startRowIndex": ANY, "endRowIndex": ANY, "startColumnIndex": ANY, "endColumnIndex": ANY}
GRID_PROPERTIES = {"rowCount": ANY, "columnCount": ANY, "frozenRowCount": ANY, "frozenColumnCount": ANY,
                   "hideGridlines": ANY, "rowGroupControlAfter": ANY, "columnGroupControlAfter": ANY}
SHEET_PROPERTIES = {"sheetId": ANY, "title": ANY, "index": ANY,
                    "sheetType": frozenset({"SHEET_TYPE_UNSPECIFIED", "GRID", "OBJECT", "DATA_SOURCE"}),
                    "gridProperties": GRID_PROPERTIES, "hidden": ANY, "tabColor": ANY, "tabColorStyle": ANY,
                    "rightToLeft": ANY, "dataSourceSheetProperties": ANY}
NUMBER_FORMAT = {"type": frozenset({"NUMBER_FORMAT_TYPE_UNSPECIFIED", "TEXT", "NUMBER", "PERCENT", "CURRENCY", "DATE",
                                    "TIME", "DATE_TIME", "SCIENTIFIC"}), "pattern": ANY}
CELL_FORMAT = {"numberFormat": NUMBER_FORMAT, **dict.fromkeys(
    ("backgroundColor", "backgroundColorStyle", "borders", "padding", "horizontalAlignment", "verticalAlignment",
     "wrapStrategy", "textDirection", "textFormat", "hyperlinkDisplayType", "textRotation"), ANY)}
CELL_DATA = {"userEnteredFormat": CELL_FORMAT, **dict.fromkeys(
    ("userEnteredValue", "note", "textFormatRuns", "dataValidation", "pivotTable", "dataSourceTable",
     "dataSourceFormula"), ANY)}
CHART_DATA = {"sourceRange": {"sources": [GRID_RANGE]}, "aggregateType": ANY, "columnReference": ANY, "groupRule": ANY}
BASIC_CHART = {
    "chartType": frozenset({"BASIC_CHART_TYPE_UNSPECIFIED", "BAR", "LINE", "AREA", "COLUMN", "SCATTER", "COMBO",
                            "STEPPED_AREA"}),
    "legendPosition": frozenset({"BASIC_CHART_LEGEND_POSITION_UNSPECIFIED", "BOTTOM_LEGEND", "LEFT_LEGEND",
                                 "RIGHT_LEGEND", "TOP_LEGEND", "NO_LEGEND"}),
    "axis": [{"position": AXIS_POSITION, "title": ANY, "format": ANY, "titleTextPosition": ANY,
              "viewWindowOptions": ANY}],
    "domains": [{"domain": CHART_DATA, "reversed": ANY}],
    "series": [{"series": CHART_DATA, "targetAxis": AXIS_POSITION, **dict.fromkeys(
        ("type", "lineStyle", "dataLabel", "smoothLine", "pointStyle", "color", "colorStyle", "styleOverrides"), ANY)}],
    **dict.fromkeys(("headerCount", "threeDimensional", "interpolateNulls", "stackedType", "lineSmoothing",
                     "compareMode", "totalDataLabel"), ANY)}
CHART_SPEC = {"basicChart": BASIC_CHART, **dict.fromkeys(
    ("title", "altText", "titleTextFormat", "titleTextPosition", "subtitle", "subtitleTextFormat",
     "subtitleTextPosition", "fontName", "maximized", "backgroundColor", "backgroundColorStyle",
     "dataSourceChartProperties", "filterSpecs", "sortSpecs", "hiddenDimensionStrategy", "pieChart", "bubbleChart",
     "candlestickChart", "orgChart", "histogramChart", "waterfallChart", "treemapChart", "scorecardChart"), ANY)}
EMBEDDED_CHART = {"chartId": ANY, "spec": CHART_SPEC, "border": ANY, "position": {
    "sheetId": ANY, "newSheet": ANY, "overlayPosition": {
        "anchorCell": {"sheetId": ANY, "rowIndex": ANY, "columnIndex": ANY},
        "offsetXPixels": ANY, "offsetYPixels": ANY, "widthPixels": ANY, "heightPixels": ANY}}}
REQUESTS = {
    "addSheet": {"properties": SHEET_PROPERTIES},
    "deleteSheet": {"sheetId": ANY},
    "appendDimension": {"sheetId": ANY, "dimension": DIMENSION, "length": ANY},
    "deleteDimension": {"range": {"sheetId": ANY, "dimension": DIMENSION, "startIndex": ANY, "endIndex": ANY}},
    "updateSheetProperties": {"properties": SHEET_PROPERTIES, "fields": ANY},
    "repeatCell": {"range": GRID_RANGE, "cell": CELL_DATA, "fields": ANY},
    "addChart": {"chart": EMBEDDED_CHART},
    "deleteEmbeddedObject": {"objectId": ANY},
}
VALUE_RANGE = {"range": ANY, "majorDimension": DIMENSION, "values": ANY}
# query parameters and body members of the values calls whose values are enums
VALUE_OPTIONS = {
    "valueInputOption": frozenset({"INPUT_VALUE_OPTION_UNSPECIFIED", "RAW", "USER_ENTERED"}),
    "insertDataOption": frozenset({"OVERWRITE", "INSERT_ROWS"}),
    "valueRenderOption": frozenset({"FORMATTED_VALUE", "UNFORMATTED_VALUE", "FORMULA"}),
    "responseValueRenderOption": frozenset({"FORMATTED_VALUE", "UNFORMATTED_VALUE", "FORMULA"}),
    "dateTimeRenderOption": frozenset({"SERIAL_NUMBER", "FORMATTED_STRING"}),
    "responseDateTimeRenderOption": frozenset({"SERIAL_NUMBER", "FORMATTED_STRING"}),
    "majorDimension": DIMENSION,
}
VALUES_BATCH_UPDATE = {"data": [VALUE_RANGE], **VALUE_OPTIONS}


def check_shape(value: Any, shape: Any, where: str) -> None:
    """Refuse what Google refuses: a member the API does not define, an enum value it does not know (JSON null is
    the member's default, as in proto3, and gspread sends it)."""
    if shape is ANY or value is None:
        return
    if isinstance(shape, frozenset):
        if value not in shape:
            raise ApiError(400, f"Invalid value at '{where}', {json.dumps(value)}")
    elif isinstance(shape, list):
        if not isinstance(value, list):
            raise ApiError(400, f"Invalid value at '{where}': expected a list")
        for i, item in enumerate(value):
            check_shape(item, shape[0], f"{where}[{i}]")
    elif isinstance(shape, dict):
        if not isinstance(value, dict):
            raise ApiError(400, f"Invalid value at '{where}': expected an object")
        for name, member in value.items():
            if name not in shape:
                raise ApiError(400, f'Invalid JSON payload received. Unknown name "{name}" at \'{where}\': '
                                    "Cannot find field.")
            check_shape(member, shape[name], f"{where}.{name}" if where else name)


def check_options(options: dict) -> None:
    for name, value in options.items():
        if name in VALUE_OPTIONS:
            check_shape(value, VALUE_OPTIONS[name], name)


@dataclass
class Sheet:
    sheet_id: int
    title: str
    row_count: int = 1000
    column_count: int = 26
    cells: list[list[Any]] = field(default_factory=list)  # typed values; None = empty
    frozen_rows: int = 0
    charts: list[dict] = field(default_factory=list)  # {"chartId", "spec", "position"}
    formats: list[dict] = field(default_factory=list)  # repeatCell requests, as sent

    def properties(self, index: int) -> dict:
        grid = {"rowCount": self.row_count, "columnCount": self.column_count}
        if self.frozen_rows:
            grid["frozenRowCount"] = self.frozen_rows
        return {"sheetId": self.sheet_id, "title": self.title, "index": index, "sheetType": "GRID",
                "gridProperties": grid}

    def last_row(self) -> int:
        """1-based number of the last row holding any value (0 when empty)."""
        for i in range(len(self.cells) - 1, -1, -1):
            if any(v not in (None, "") for v in self.cells[i]):
                return i + 1
        return 0

    def put(self, row: int, col: int, value: Any) -> None:
        while len(self.cells) < row:
            self.cells.append([])
        line = self.cells[row - 1]
        while len(line) < col:
            line.append(None)
        line[col - 1] = value


@dataclass
class Spreadsheet:
    spreadsheet_id: str
    title: str
    sheets: list[Sheet] = field(default_factory=list)
    next_sheet_id: int = 0
    next_chart_id: int = 1000

    def add(self, title: str, rows: int = 1000, cols: int = 26) -> Sheet:
        if any(s.title == title for s in self.sheets):
            raise ApiError(400, f'Invalid requests[0].addSheet: A sheet with the name "{title}" already exists.')
        sheet = Sheet(self.next_sheet_id, title, rows, cols)
        self.next_sheet_id += 1
        self.sheets.append(sheet)
        return sheet

    def sheet(self, title: str) -> Sheet:
        for s in self.sheets:
            if s.title == title:
                return s
        raise ApiError(400, f"Unable to parse range: {title}")

    def by_id(self, sheet_id: int) -> Sheet:
        for s in self.sheets:
            if s.sheet_id == sheet_id:
                return s
        raise ApiError(400, f"No grid with id: {sheet_id}")

    def metadata(self) -> dict:
        return {"spreadsheetId": self.spreadsheet_id,
                "properties": {"title": self.title, "locale": "en_US", "timeZone": "Etc/GMT", "autoRecalc": "ON_CHANGE"},
                "sheets": [{"properties": s.properties(i), **({"charts": s.charts} if s.charts else {})}
                           for i, s in enumerate(self.sheets)],
                "spreadsheetUrl": f"https://docs.google.com/spreadsheets/d/{self.spreadsheet_id}/edit"}


def column_number(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n


def column_letters(n: int) -> str:
    letters = ""
    while n:
        n, rem = divmod(n - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


@dataclass
class Range:
    title: str
    row1: int
    col1: int
    row2: int | None  # None = to the end of the sheet
    col2: int | None

    def a1(self, sheet: Sheet, rows: int, cols: int) -> str:
        quoted = "'" + self.title.replace("'", "''") + "'"
        last_row = self.row1 + max(rows, 1) - 1
        last_col = self.col1 + max(cols, 1) - 1
        return f"{quoted}!{column_letters(self.col1)}{self.row1}:{column_letters(last_col)}{last_row}"


def parse_range(spreadsheet: Spreadsheet, text: str) -> tuple[Sheet, Range]:
    if "!" in text:
        title, ref = text.rsplit("!", 1)
    else:
        title, ref = text, ""
    if title.startswith("'") and title.endswith("'"):
        title = title[1:-1].replace("''", "'")
    sheet = spreadsheet.sheet(title)
    if not ref:
        return sheet, Range(title, 1, 1, None, None)
    start, _, end = ref.upper().partition(":")
    m1, m2 = CELL_REF.match(start), CELL_REF.match(end or start)
    if not m1 or not m2:
        raise ApiError(400, f"Unable to parse range: {text}")
    col1 = column_number(m1.group(1)) if m1.group(1) else 1
    row1 = int(m1.group(2)) if m1.group(2) else 1
    col2 = column_number(m2.group(1)) if m2.group(1) else None
    row2 = int(m2.group(2)) if m2.group(2) else None
    if not end and m1.group(1) and m1.group(2):  # a single cell
        col2, row2 = col1, row1
    return sheet, Range(title, row1, col1, row2, col2)


def user_entered(value: Any) -> Any:
    """Parse input the way Sheets does for USER_ENTERED: a leading apostrophe keeps the rest as text."""
    if not isinstance(value, str):
        return value
    if value.startswith("'"):
        return value[1:]
    if DATE_INPUT.match(value):
        return dt.date.fromisoformat(value)
    if DATETIME_INPUT.match(value):
        return dt.datetime.fromisoformat(value)
    if NUMBER_INPUT.match(value):
        number = float(value)
        return int(number) if number.is_integer() and "." not in value else number
    if value.upper() in ("TRUE", "FALSE"):
        return value.upper() == "TRUE"
    return value


def render(value: Any, option: str) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return value if option == "UNFORMATTED_VALUE" else ("TRUE" if value else "FALSE")
    if isinstance(value, dt.datetime):
        if option == "UNFORMATTED_VALUE":
            delta = value - dt.datetime.combine(SERIAL_EPOCH, dt.time())
            return delta.days + delta.seconds / 86400
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.date):
        return (value - SERIAL_EPOCH).days if option == "UNFORMATTED_VALUE" else value.isoformat()
    if isinstance(value, (int, float)):
        return value if option == "UNFORMATTED_VALUE" else (str(int(value)) if float(value).is_integer() else str(value))
    return value


class SheetsState:
    def __init__(self, create_on_first_use: bool = False) -> None:
        self.create_on_first_use = create_on_first_use
        self.lock = threading.Lock()
        self.spreadsheets: dict[str, Spreadsheet] = {}
        self.failures: list[tuple[int, float | None, bool, str]] = []
        self.requests: list[tuple[str, str, int]] = []  # method, path, body bytes

    def get(self, spreadsheet_id: str) -> Spreadsheet:
        if spreadsheet_id not in self.spreadsheets and self.create_on_first_use:
            self.spreadsheets[spreadsheet_id] = Spreadsheet(spreadsheet_id, spreadsheet_id)
            self.spreadsheets[spreadsheet_id].add("Sheet1")
        if spreadsheet_id not in self.spreadsheets:
            raise ApiError(404, "Requested entity was not found.")
        return self.spreadsheets[spreadsheet_id]

    # -- values ---------------------------------------------------------------------------------------
    def read(self, spreadsheet: Spreadsheet, text: str, params: dict) -> dict:
        sheet, rng = parse_range(spreadsheet, text)
        option = params.get("valueRenderOption", "FORMATTED_VALUE")
        last_row = min(rng.row2 or sheet.row_count, sheet.row_count, max(sheet.last_row(), 0))
        width = max((len(r) for r in sheet.cells), default=0)
        last_col = min(rng.col2 or sheet.column_count, sheet.column_count, width)
        rows = []
        for r in range(rng.row1, last_row + 1):
            line = sheet.cells[r - 1] if r <= len(sheet.cells) else []
            values = [render(line[c - 1] if c <= len(line) else None, option) for c in range(rng.col1, last_col + 1)]
            while values and values[-1] == "":
                values.pop()
            rows.append(values)
        while rows and not rows[-1]:
            rows.pop()
        if params.get("majorDimension") == "COLUMNS":
            width = max((len(r) for r in rows), default=0)
            rows = [[r[c] if c < len(r) else "" for r in rows] for c in range(width)]
            for col in rows:
                while col and col[-1] == "":
                    col.pop()
        body = {"range": rng.a1(sheet, rng.row2 or sheet.row_count, rng.col2 or sheet.column_count),
                "majorDimension": params.get("majorDimension", "ROWS")}
        if rows:
            body["values"] = rows
        return body

    def write(self, spreadsheet: Spreadsheet, text: str, values: list[list[Any]], input_option: str,
              grow: bool = False) -> dict:
        sheet, rng = parse_range(spreadsheet, text)
        if input_option not in ("RAW", "USER_ENTERED"):
            raise ApiError(400, "Invalid valueInputOption")
        height = len(values)
        width = max((len(r) for r in values), default=0)
        last_row, last_col = rng.row1 + height - 1, rng.col1 + width - 1
        if not grow and (last_row > sheet.row_count or last_col > sheet.column_count):
            raise ApiError(400, f"Range ({sheet.title}!{column_letters(last_col)}{last_row}) exceeds grid limits. "
                                f"Max rows: {sheet.row_count}, max columns: {sheet.column_count}")
        sheet.row_count, sheet.column_count = max(sheet.row_count, last_row), max(sheet.column_count, last_col)
        cells = 0
        for i, row in enumerate(values):
            for j, value in enumerate(row):
                if value is None:  # Sheets skips null cells on write
                    continue
                sheet.put(rng.row1 + i, rng.col1 + j, user_entered(value) if input_option == "USER_ENTERED" else value)
                cells += 1
        return {"spreadsheetId": spreadsheet.spreadsheet_id, "updatedRange": rng.a1(sheet, height, width),
                "updatedRows": height, "updatedColumns": width, "updatedCells": cells}

    def append(self, spreadsheet: Spreadsheet, text: str, values: list[list[Any]], params: dict) -> dict:
        sheet, rng = parse_range(spreadsheet, text)
        # The "table" starts at the range: rows are added after the last filled row at or below its start.
        start = max(rng.row1, sheet.last_row() + 1)
        if params.get("insertDataOption") == "INSERT_ROWS" and start <= len(sheet.cells):
            sheet.cells[start - 1:start - 1] = [[] for _ in values]
            sheet.row_count += len(values)
        first_col = column_letters(rng.col1)
        target = "'" + sheet.title.replace("'", "''") + f"'!{first_col}{start}"
        updates = self.write(spreadsheet, target, values, params.get("valueInputOption", ""), grow=True)
        return {"spreadsheetId": spreadsheet.spreadsheet_id, "tableRange": f"'{sheet.title}'!A1", "updates": updates}

    def clear(self, spreadsheet: Spreadsheet, text: str) -> dict:
        sheet, rng = parse_range(spreadsheet, text)
        for r in range(rng.row1, min(rng.row2 or len(sheet.cells), len(sheet.cells)) + 1):
            line = sheet.cells[r - 1]
            for c in range(rng.col1, min(rng.col2 or len(line), len(line)) + 1):
                line[c - 1] = None
        return {"spreadsheetId": spreadsheet.spreadsheet_id, "clearedRange": text}

    # -- spreadsheets.batchUpdate ----------------------------------------------------------------------
    def batch_update(self, spreadsheet: Spreadsheet, body: dict) -> dict:
        for i, request in enumerate(body.get("requests", [])):  # all checked before any is applied, as on Google
            kind, args = next(iter(request.items()))
            if kind not in REQUESTS:
                raise ApiError(400, f"the stand-in does not support {kind}")
            check_shape(args, REQUESTS[kind], f"requests[{i}].{kind}")
        replies = []
        for request in body.get("requests", []):
            kind, args = next(iter(request.items()))
            if kind == "addSheet":
                props = args.get("properties", {})
                grid = props.get("gridProperties", {})
                sheet = spreadsheet.add(props.get("title") or f"Sheet{spreadsheet.next_sheet_id + 1}",
                                        grid.get("rowCount", 1000), grid.get("columnCount", 26))
                replies.append({"addSheet": {"properties": sheet.properties(len(spreadsheet.sheets) - 1)}})
            elif kind == "deleteSheet":
                spreadsheet.sheets.remove(spreadsheet.by_id(args["sheetId"]))
                replies.append({})
            elif kind == "appendDimension":
                sheet = spreadsheet.by_id(args["sheetId"])
                if args["dimension"] == "ROWS":
                    sheet.row_count += args["length"]
                else:
                    sheet.column_count += args["length"]
                replies.append({})
            elif kind == "deleteDimension":
                rng = args["range"]
                sheet = spreadsheet.by_id(rng["sheetId"])
                start, end = rng["startIndex"], rng["endIndex"]
                if rng["dimension"] == "ROWS":
                    del sheet.cells[start:end]
                    sheet.row_count -= end - start
                else:
                    for line in sheet.cells:
                        del line[start:end]
                    sheet.column_count -= end - start
                replies.append({})
            elif kind == "updateSheetProperties":
                props = args["properties"]
                sheet = spreadsheet.by_id(props["sheetId"])
                grid = props.get("gridProperties", {})
                sheet.title = props.get("title", sheet.title)
                sheet.row_count = grid.get("rowCount", sheet.row_count)
                sheet.column_count = grid.get("columnCount", sheet.column_count)
                sheet.frozen_rows = grid.get("frozenRowCount", sheet.frozen_rows)
                replies.append({})
            elif kind == "repeatCell":
                spreadsheet.by_id(args["range"]["sheetId"]).formats.append(args)
                replies.append({})
            elif kind == "addChart":
                chart = args["chart"]
                anchor = chart["position"]["overlayPosition"]["anchorCell"]
                sheet = spreadsheet.by_id(anchor["sheetId"])
                basic = chart["spec"]["basicChart"]
                for source in [d["domain"] for d in basic["domains"]] + [s["series"] for s in basic["series"]]:
                    for rng in source["sourceRange"]["sources"]:
                        spreadsheet.by_id(rng["sheetId"])  # a chart over a missing tab is a 400 on Google too
                chart = {**chart, "chartId": spreadsheet.next_chart_id}
                spreadsheet.next_chart_id += 1
                sheet.charts.append(chart)
                replies.append({"addChart": {"chart": chart}})
            elif kind == "deleteEmbeddedObject":
                for sheet in spreadsheet.sheets:
                    sheet.charts = [c for c in sheet.charts if c["chartId"] != args["objectId"]]
                replies.append({})
        return {"spreadsheetId": spreadsheet.spreadsheet_id, "replies": replies}


class Handler(BaseHTTPRequestHandler):
    server: "SheetsServer"

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def _answer(self, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        state = self.server.state
        url = urlsplit(self.path)
        params = {k: (v if k == "ranges" else v[0]) for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}") if length else {}
        with state.lock:
            state.requests.append((method, url.path, length))
            # Failures are served in order: one waiting for an ":append" lets other requests pass first.
            failure = state.failures[0] if state.failures and state.failures[0][3] in unquote(url.path) else None
            if failure is not None:
                state.failures.pop(0)
        if failure is not None:
            status, retry_after, after_apply, _ = failure
            if after_apply:  # the write happens, the answer is lost: what a gateway timeout looks like
                try:
                    with state.lock:
                        self._route(method, url.path, params, body)
                except ApiError:
                    pass
            headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
            self._answer(status, {"error": {"code": status, "message": "injected failure",
                                            "status": STATUS_NAMES.get(status, "UNKNOWN")}}, headers)
            return
        try:
            with state.lock:
                result = self._route(method, url.path, params, body)
            self._answer(200, result)
        except ApiError as err:
            self._answer(err.code, {"error": {"code": err.code, "message": str(err),
                                              "status": STATUS_NAMES.get(err.code, "UNKNOWN")}})

    def _route(self, method: str, path: str, params: dict, body: dict) -> dict:
        state = self.server.state
        if not path.startswith(API_PREFIX + "/"):
            raise ApiError(404, "not a Sheets API path")
        rest = path[len(API_PREFIX) + 1:]
        spreadsheet_id, _, tail = rest.partition("/")
        if ":" in spreadsheet_id and not tail:  # {id}:batchUpdate
            spreadsheet_id, _, action = spreadsheet_id.partition(":")
            if action == "batchUpdate" and method == "POST":
                return state.batch_update(state.get(unquote(spreadsheet_id)), body)
            raise ApiError(404, f"unknown action {action}")
        spreadsheet = state.get(unquote(spreadsheet_id))
        if not tail:
            if method == "GET":
                return spreadsheet.metadata()
            raise ApiError(404, "unknown method")
        if tail.startswith("values"):
            check_options(params)
        if tail.startswith("values:"):
            action = tail[len("values:"):]
            if action == "batchGet" and method == "GET":
                ranges = params.get("ranges", [])
                return {"spreadsheetId": spreadsheet.spreadsheet_id,
                        "valueRanges": [state.read(spreadsheet, r, params) for r in ranges]}
            if action == "batchUpdate" and method == "POST":
                check_shape(body, VALUES_BATCH_UPDATE, "")
                option = body.get("valueInputOption", "")
                responses = [state.write(spreadsheet, d["range"], d.get("values", []), option) for d in body.get("data", [])]
                return {"spreadsheetId": spreadsheet.spreadsheet_id, "totalUpdatedCells": sum(r["updatedCells"] for r in responses),
                        "responses": responses}
            if action == "batchClear" and method == "POST":
                for r in body.get("ranges", []):
                    state.clear(spreadsheet, r)
                return {"spreadsheetId": spreadsheet.spreadsheet_id, "clearedRanges": body.get("ranges", [])}
            raise ApiError(404, f"unknown values action {action}")
        if tail.startswith("values/"):
            raw_range, _, action = tail[len("values/"):].partition(":")
            text = unquote(raw_range)
            if method in ("PUT", "POST") and action in ("", "append"):
                check_shape(body, VALUE_RANGE, "")
            if not action and method == "GET":
                return state.read(spreadsheet, text, params)
            if not action and method == "PUT":
                return state.write(spreadsheet, text, body.get("values", []), params.get("valueInputOption", ""))
            if action == "append" and method == "POST":
                return state.append(spreadsheet, text, body.get("values", []), params)
            if action == "clear" and method == "POST":
                return state.clear(spreadsheet, text)
        raise ApiError(404, f"unknown path {path}")

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")


class SheetsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int = 0, create_on_first_use: bool = False):
        super().__init__(("127.0.0.1", port), Handler)
        self.state = SheetsState(create_on_first_use)
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{API_PREFIX}"

    def create_spreadsheet(self, spreadsheet_id: str, title: str = "Untitled", sheets: tuple[str, ...] = ("Sheet1",)) -> None:
        with self.state.lock:
            spreadsheet = Spreadsheet(spreadsheet_id, title)
            for sheet_title in sheets:
                spreadsheet.add(sheet_title)
            self.state.spreadsheets[spreadsheet_id] = spreadsheet

    def fail_next(self, status: int, times: int = 1, retry_after: float | None = None, after_apply: bool = False,
                  path_contains: str = "") -> None:
        """Answer the next `times` requests (whose path contains `path_contains`) with `status`;
        with `after_apply`, carry them out first, as when a gateway loses the answer."""
        with self.state.lock:
            self.state.failures += [(status, retry_after, after_apply, path_contains)] * times

    @property
    def request_count(self) -> int:
        return len(self.state.requests)

    def cell_values(self, spreadsheet_id: str, title: str) -> list[list[Any]]:
        """The typed cells of a worksheet (for assertions), trailing empties trimmed."""
        with self.state.lock:
            sheet = self.state.get(spreadsheet_id).sheet(title)
            return [list(row) for row in sheet.cells[:sheet.last_row()]]

    def start(self) -> "SheetsServer":
        self._thread = threading.Thread(target=self.serve_forever, name="fake-sheets", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def __enter__(self) -> "SheetsServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="local Sheets API v4 stand-in")
    parser.add_argument("--port", type=int, default=8099)
    args = parser.parse_args()
    server = SheetsServer(args.port, create_on_first_use=True)
    print(f"Sheets stand-in at {server.base_url}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
