"""sheets_export: API requests (reads included) to export 100,000 responses of 20 questions to the local
Sheets-v4 stand-in through real gspread, against the seeds' approach of one append request per response.

The baseline is measured on a sample (one `append_row` per response, as the seeds did) and extrapolated
to 100,000 responses: running it fully would mean 100,000 HTTP round trips for a figure that is linear.
"""

from __future__ import annotations

import time

import requests

from bench.common import figure, throwaway_database
from fieldpipe import forms, orgs
from fieldpipe.db import connect
from fieldpipe.sheets.export import export_form
from fieldpipe.sheets.quota import sheets_limiter
from fieldpipe.sheets.targets import GoogleSheetsTarget, sheets_client
from tests.fakes.sheets_server import SheetsServer

RESPONSES = 100_000
BASELINE_SAMPLE = 300
SPREADSHEET = "bench-sheet"
CHOICES = [{"value": v} for v in ("pune", "nagpur", "shimla", "varanasi")]
QUESTIONS = (
    [{"key": f"text_{i}", "label": f"Text {i}", "type": "text"} for i in range(5)]
    + [{"key": f"number_{i}", "label": f"Number {i}", "type": "integer"} for i in range(5)]
    + [{"key": f"decimal_{i}", "label": f"Decimal {i}", "type": "decimal"} for i in range(2)]
    + [{"key": f"choice_{i}", "label": f"Choice {i}", "type": "single_choice", "choices": CHOICES} for i in range(3)]
    + [{"key": "many", "label": "Many", "type": "multi_choice", "choices": CHOICES},
       {"key": "visited_on", "label": "Visit date", "type": "date"},
       {"key": "phone", "label": "Phone", "type": "phone", "mask": True},
       {"key": "ok", "label": "OK?", "type": "boolean"},
       {"key": "local", "label": "Local word", "type": "text"}]
)

# Set-based: 100,000 realistic responses in one statement (the API ingestion has its own benchmark).
SEED_SQL = """
INSERT INTO responses (form_id, form_version_id, submission_id, collector_id, submitted_at, answers, content_hash)
SELECT %(form)s, %(version)s, gen_random_uuid(), 'enum-' || (n %% 50), now() - n * interval '1 minute',
       jsonb_build_object(
         'text_0', 'Respondent ' || n, 'text_1', 'Ward ' || (n %% 97), 'text_2', 'Street ' || (n %% 13),
         'text_3', 'note ' || md5(n::text), 'text_4', 'ok',
         'number_0', n, 'number_1', n %% 1000, 'number_2', 20000 + n %% 5000, 'number_3', n %% 7, 'number_4', 3,
         'decimal_0', (n %% 100) / 4.0, 'decimal_1', 1.5,
         'choice_0', (ARRAY['pune','nagpur','shimla','varanasi'])[1 + n %% 4], 'choice_1', 'pune', 'choice_2', 'shimla',
         'many', jsonb_build_array('pune', 'shimla'), 'visited_on', to_char(date '2026-01-01' + n %% 300, 'YYYY-MM-DD'),
         'phone', '+9198' || lpad((n %% 100000000)::text, 8, '0'), 'ok', n %% 2 = 0, 'local', 'पानी'),
       md5(n::text)
  FROM generate_series(1, %(count)s) AS n
"""


def _seed(conn) -> int:
    organization_id = orgs.ensure_organization(conn, "bench", "Bench")
    forms.create_form(conn, organization_id, {"slug": "bench-survey", "title": "Bench survey", "questions": QUESTIONS})
    form = forms.get_form_row(conn, organization_id, "bench-survey")
    conn.execute(SEED_SQL, {"form": form["id"], "version": form["version_id"], "count": RESPONSES})
    return form["id"]


def _naive_requests_per_response(server: SheetsServer, conn, form_id: int) -> float:
    """The seeds' approach: open the sheet, then one `append_row` per response."""
    server.create_spreadsheet("naive", "naive", ("Responses",))
    before = server.request_count
    client = sheets_client(requests.Session(), base_url=server.base_url)
    worksheet = client.open_by_key("naive").worksheet("Responses")
    rows = conn.execute("SELECT submission_id, answers FROM responses WHERE form_id = %s ORDER BY id LIMIT %s",
                        (form_id, BASELINE_SAMPLE)).fetchall()
    opening = server.request_count - before
    for row in rows:
        worksheet.append_row([str(row["submission_id"])] + [str(row["answers"].get(q["key"], "")) for q in QUESTIONS])
    return (server.request_count - before - opening) / len(rows), opening


def run() -> dict:
    with throwaway_database() as url, connect(url, autocommit=True) as conn, SheetsServer() as server:
        form_id = _seed(conn)
        server.create_spreadsheet(SPREADSHEET, "bench", ("Sheet1",))
        settings = {"spreadsheet_id": SPREADSHEET, "worksheet": "Responses"}
        # The production limiter (60 a minute, bursts of 60): the export fits inside it without waiting.
        limiter = sheets_limiter(conn)
        target = GoogleSheetsTarget(sheets_client(requests.Session(), base_url=server.base_url,
                                                  limiter=limiter), SPREADSHEET)
        started = time.monotonic()
        report = export_form(conn, form_id, target, settings)
        seconds = time.monotonic() - started
        requests_used = server.request_count
        largest = max(size for method, path, size in server.state.requests if path.endswith(":append"))
        rows_in_sheet = len(server.cell_values(SPREADSHEET, "Responses")) - 1
        assert report.appended == rows_in_sheet == RESPONSES, (report.summary(), rows_in_sheet)

        # An incremental run: 1,000 edits and 1,000 new responses.
        conn.execute("""UPDATE responses SET revision = revision + 1, updated_at = clock_timestamp(),
                               answers = answers || '{"number_4": 4}' WHERE id %% 100 = 0 AND form_id = %s""",
                     (form_id,))
        conn.execute(SEED_SQL.replace("generate_series(1,", "generate_series(200001, 200000 +"),
                     {"form": form_id, "version": conn.execute("SELECT id FROM form_versions WHERE form_id = %s",
                                                               (form_id,)).fetchone()["id"], "count": 1000})
        before = server.request_count
        incremental = export_form(conn, form_id, target, settings)
        incremental_requests = server.request_count - before
        limiter.close()

        per_response, opening = _naive_requests_per_response(server, conn, form_id)
        baseline = opening + per_response * RESPONSES
    return figure(requests_used, "API requests", baseline, "<= 50", higher_is_better=False,
                  seconds=round(seconds, 1), largest_request_bytes=largest,
                  incremental_requests_1000_edits_1000_new=incremental_requests,
                  incremental=f"{incremental.updated} updated, {incremental.appended} appended",
                  note=f"value measured fully ({RESPONSES} responses, 20 questions, 26 columns); baseline "
                       f"extrapolated from {BASELINE_SAMPLE} one-append-per-response calls "
                       f"({per_response:g} request each, plus {opening} to open the sheet)")


if __name__ == "__main__":
    print(run())
