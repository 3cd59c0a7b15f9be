"""Example request bodies shown in the API reference for each operation. They fit together: posted in this order
to a fresh organization (the first class and students get ids 1, 2, ...), every one succeeds, which
tests/test_contract.py checks."""

FORM = {
    "slug": "village-water-points",
    "title": "Village water points",
    "questions": [
        {"key": "village", "label": "Village", "type": "text", "required": True},
        {"key": "source", "label": "Water source", "type": "single_choice", "required": True,
         "choices": [{"value": "well", "label": "Well"}, {"value": "handpump", "label": "Hand pump"},
                     {"value": "tap", "label": "Tap"}]},
        {"key": "working", "label": "Working today?", "type": "boolean", "required": True},
        {"key": "households", "label": "Households served", "type": "integer"},
        {"key": "caretaker_phone", "label": "Caretaker's phone", "type": "phone", "mask": True},
    ],
}

SUBMISSION = {
    "submission_id": "0b9c1c1e-5d0a-4f7e-9a51-2f4b7d0c1a01",
    "submitted_at": "2026-11-20T10:15:00+05:30",
    "collector": {"id": "enumerator-7", "phone": "+919812345678"},
    "answers": {"village": "Mashobra", "source": "handpump", "working": True, "households": 42,
                "caretaker_phone": "+919876543210"},
}

BATCH = {"items": [
    {**SUBMISSION, "submission_id": "0b9c1c1e-5d0a-4f7e-9a51-2f4b7d0c1a02",
     "answers": {"village": "Naldehra", "source": "well", "working": False}},
    {**SUBMISSION, "submission_id": "0b9c1c1e-5d0a-4f7e-9a51-2f4b7d0c1a03",
     "answers": {"village": "Kufri", "source": "tap", "working": True, "households": 15}},
]}

RESPONSE_EDIT = {"answers": {**SUBMISSION["answers"], "households": 44}}

WEBHOOK = {"url": "https://example.org/fieldpipe-hooks", "events": ["flag.opened", "flag.resolved"]}
NOTICE_RECIPIENTS = {"emails": ["data-team@example.org", "field-ops@example.org"]}

SCHOOL = {"udise": "02030400101", "name": "GSSS Mashobra", "district": "Shimla", "block": "Mashobra"}
CLASS = {"grade": 5, "section": "A"}
STUDENTS = {"students": [
    {"roll_number": "1", "name": "Asha Devi", "parent_phone": "+919812345001"},
    {"roll_number": "2", "name": "Ravi Kumar", "parent_phone": "+919812345002"},
]}
SUBJECT = {"code": "maths", "name": "Mathematics"}
ASSESSMENT = {
    "title": "Grade 5 maths, unit 3", "subject": "maths", "type": "LO", "evaluation": "Marks", "outcome": "TSP",
    "items": [{"key": "LO1", "label": "Adds fractions", "max_marks": 10},
              {"key": "LO2", "label": "Compares fractions", "max_marks": 10}],
    "pass_criterion": {"min_percent": 40}, "class_ids": [1],
}
MARKS = {
    "submission_id": "5e1d2c3b-4a59-4687-9a0b-1c2d3e4f5a61", "class_id": 1,
    "submitted_at": "2026-11-20T11:00:00+05:30", "collector": {"id": "teacher-1"},
    "entries": [{"student_id": 1, "is_present": True, "marks": {"LO1": 8, "LO2": 6}},
                {"student_id": 2, "is_present": False}],
}
ASSESSMENT_PATCH = {"title": "Grade 5 maths, unit 3 (revised)", "deadline": "2027-01-31T17:00:00+05:30"}
CLASS_ASSESSMENT = {
    "title": "Grade 5 reading, class record", "type": "LO", "evaluation": "Marks", "outcome": "TSP", "level": "class",
    "items": [{"key": "R1", "label": "Reads a short paragraph", "max_marks": 1}],
    "pass_criterion": {"min_percent": 50}, "class_ids": [1],
}
EXAM = {
    "title": "Grade 5 maths quiz", "type": "Question", "evaluation": "Marks", "outcome": "TSP", "level": "exam",
    "items": [{"key": "Q1", "label": "1/2 + 1/4 = ?", "max_marks": 1, "choices": ["3/4", "2/6", "1/8"],
               "answer_key": "3/4"}],
    "pass_criterion": {"min_percent": 50}, "class_ids": [1],
}
CLASS_RESULTS = {  # for CLASS_ASSESSMENT (the second assessment created)
    "submission_id": "5e1d2c3b-4a59-4687-9a0b-1c2d3e4f5a62", "class_id": 1,
    "submitted_at": "2026-11-20T11:05:00+05:30", "collector": {"id": "teacher-1"},
    "results": [{"item": "R1", "present": 2, "cleared": 1}],
}
EXAM_ANSWERS = {  # for EXAM (the third assessment created)
    "submission_id": "5e1d2c3b-4a59-4687-9a0b-1c2d3e4f5a63", "class_id": 1,
    "submitted_at": "2026-11-20T11:10:00+05:30", "collector": {"id": "teacher-1"},
    "answers": [{"student_id": 1, "question": "Q1", "answer": "3/4"}, {"student_id": 2, "question": "Q1", "answer": "1/8"}],
}
ENROLLMENT = {  # into the first class
    "class_id": 1, "name": "Meena Thakur", "date_of_birth": "2016-07-12", "gender": "female",
    "guardians": [{"name": "Ramesh Thakur", "relation": "father", "phone": "+919876543210"}],
    "admitted_on": "2022-04-01",
}
RULES = {"rules": [{"id": "working-point-serves-someone", "expression": "not working or households >= 1",
                    "message": "A working water point serving {households} households?", "severity": "warning",
                    "notify": "collector"}]}

TASK = {"kind": "webhook", "config": {"url": "https://example.org/fieldpipe-hooks",
                                      "events": ["response.created", "response.updated", "flag.opened"]}}
SHEET_TASK = {"kind": "sheet_export", "config": {"spreadsheet_id": "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms",
                                                 "worksheet": "Responses"}}
REPLAY = {"from": "2026-11-29T00:00:00+05:30", "to": "2026-11-30T00:00:00+05:30"}
TASK_PATCH = {"enabled": False}
STUDENT_SIGN_IN = {"class_id": 1, "roll_number": "1", "pin": "482913"}
STUDENT_SIGN_IN_CODE = {"code": "q3Xw9_Lr2TmB0vKc7YhN4a"}
STUDENT_ANSWER = {"answer_id": "0b6f3c1e-2d4a-4e8b-9c7d-1a2b3c4d5e6f", "question": "Q1", "answer": "3/4"}

SMS_POLICY = {"time_zone": "Asia/Kolkata", "quiet_hours": {"start": "21:00", "end": "07:00"}, "daily_cap": 3,
              "approval_threshold": 500}

SMS_TEMPLATE = {
    "name": "school holiday",
    "kind": "holiday",
    "bodies": {"hi": "प्रिय अभिभावक, {school} में {date} को अवकाश रहेगा। {student} ({class})",
               "en": "Dear parent, {school} is closed on {date}. {student} ({class})"},
    "dlt_template_id": "1107161234567890123",
    "sender_id": "FLDPIP",
}

ANNOUNCEMENT = {"template_id": 1, "values": {"date": "15 August"}, "audience": {"class_ids": [1]}}

SMS_TEMPLATE_PATCH = {"bodies": {"hi": "प्रिय अभिभावक, {school} {date} को बंद रहेगा।",
                                 "en": "Dear parent, {school} will be closed on {date}."}}
