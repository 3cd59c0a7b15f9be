"""Google Sheets export (issue 7): every response a row, every question a column, kept current.

`export.export_form` brings one form's sheet up to date; `targets.write_table` replaces a whole tab
for other features (e.g. an assessments summary). docs/sheets.md has the connection format.
"""

from fieldpipe.sheets.export import ExportBlocked, ExportReport, export_form
from fieldpipe.sheets.targets import GoogleSheetsTarget, SheetTarget, XlsxTarget, open_target, write_table

__all__ = ["ExportBlocked", "ExportReport", "GoogleSheetsTarget", "SheetTarget", "XlsxTarget", "export_form",
           "open_target", "write_table"]
