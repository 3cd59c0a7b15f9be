"""Bulk import of responses from CSV and XLSX files, uploaded through the API or dropped in object storage.

- `files`: format, encoding, header and rows of a file, streamed from a local spool copy.
- `columns`: the columns a form's file has, the blank template, and a row turned into a submission.
- `jobs`: imports as rows in PostgreSQL (status, counts, resume point), run chunk by chunk through
  `responses.ingest` (the API's validation and set-based insert), reported in the API and next to the file.
"""

# A file waiting to be imported: `<org>/<form>/incoming/<file>`, nothing deeper. Shared by the DAG's sensor
# and the task that registers files, so a folder placeholder (`.../incoming/`) or a nested key never wakes
# the sensor for a file the task would not take (a continuous DAG would spin on it).
INCOMING_KEY_PATTERN = r"(?P<org>[^/]+)/(?P<form>[^/]+)/incoming/(?P<name>[^/]+)"
