"""How answers become cells: masks, multi-choice, dates, and columns across form versions."""

import datetime as dt

from fieldpipe.sheets.layout import ANSWER_PREFIX, Column, answer_cell, mask_phone, question_columns


def test_masks_keep_the_country_and_the_last_four_digits_only():
    assert mask_phone("+919876543210") == "+91******3210"
    assert mask_phone("+14155550123") == "+1******0123"
    assert answer_cell(Column("answers.email", "E-mail", "email", mask="partial"), "asha@example.org") == "a***@example.org"
    assert answer_cell(Column("answers.name", "Name", "text", mask="drop"), "Asha Devi") == "***"


def test_cells_are_typed_and_multi_choice_is_joined():
    assert answer_cell(Column("answers.d", "D", "date"), "2026-02-28") == dt.date(2026, 2, 28)
    assert answer_cell(Column("answers.m", "M", "multi_choice"), ["a", "b"]) == "a, b"
    assert answer_cell(Column("answers.n", "N", "decimal"), 2.5) == 2.5
    assert answer_cell(Column("answers.m", "M", "multi_choice"), []) is None


def test_questions_keep_their_first_position_and_take_the_newest_label():
    v1 = [{"key": "a", "label": "A", "type": "text"}, {"key": "b", "label": "B", "type": "text"}]
    v2 = [{"key": "b", "label": "B (new)", "type": "text"}, {"key": "c", "label": "C", "type": "integer"}]
    columns = question_columns([v1, v2])
    assert [(c.key.removeprefix(ANSWER_PREFIX), c.label) for c in columns] == [("a", "A"), ("b", "B (new)"), ("c", "C")]


def test_the_hash_mask_is_the_reporting_schemas_pseudonym(conn):
    # A hashed answer in the sheet must be joinable with the same answer in the reporting views.
    for value in ["Asha Devi", "+919876543210", "पानी", 42]:
        text = value if isinstance(value, str) else str(value)
        [sql_hash] = conn.execute("SELECT reporting.pseudonym(%s) AS p", (text,)).fetchone().values()
        assert answer_cell(Column("answers.x", "X", "text", mask="hash"), value) == sql_hash


def test_a_new_tab_skips_a_title_someone_already_used():
    # The second tab of an export is '<base> (2)'; when a person already made a tab of that name, the export
    # takes the next free number rather than writing into theirs.
    from fieldpipe.sheets.export import _next_tab_title

    one_tab = [object()]
    assert _next_tab_title("Household survey", one_tab, {"Household survey"}) == "Household survey (2)"
    assert _next_tab_title("Household survey", one_tab, {"Household survey", "Household survey (2)"}) == \
        "Household survey (3)"
    assert _next_tab_title("Household survey", one_tab, {"Household survey", "Household survey (2)",
                                                         "Household survey (3)"}) == "Household survey (4)"


def test_locations_read_as_odk_writes_them_a_trace_point_by_point():
    point = {"latitude": 31.1048, "longitude": 77.1734, "altitude": 2205.5, "accuracy": 4.0}
    assert answer_cell(Column("answers.gps", "GPS", "geopoint"), point) == "31.1048 77.1734 2205.5 4.0"
    assert answer_cell(Column("answers.gps#latitude", "GPS latitude", "geopoint"), point) == 31.1048
    trace = [{"latitude": 31.1, "longitude": 77.1}, {"latitude": 31.2, "longitude": 77.2, "accuracy": 5}]
    assert answer_cell(Column("answers.path", "Path", "geotrace"), trace) == "31.1 77.1; 31.2 77.2 5"
    assert answer_cell(Column("answers.area", "Area", "geoshape"), trace) == "31.1 77.1; 31.2 77.2 5"
