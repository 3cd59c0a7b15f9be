"""Demo announcements (issue 18): guardians for the demo school's class 5A, a holiday template in Hindi and English,
and one Hindi announcement to the school's guardians, made once. The `announcements` DAG fans it out within a
minute of `make up`, `send_sms` writes each guardian's message once to var/sms/sent.jsonl, and
GET /api/v1/announcements/{id} shows the progress reaching 100%.
"""

from __future__ import annotations

import logging

import psycopg

from fieldpipe.announcements import service, templates
from fieldpipe.dev.demo_assessments import DEMO_UDISE
from fieldpipe.enrollment.guardians import store_guardians
from fieldpipe.orgs import Caller

log = logging.getLogger("fieldpipe.demo")

# Asha and Ravi are siblings (their mother gets one message); Kiran's father opted out; Pooja has no phone.
GUARDIANS = {
    "1": [{"name": "सुनीता ठाकुर", "relation": "mother", "phone": "+919816000201"}],
    "2": [{"name": "सुनीता ठाकुर", "relation": "mother", "phone": "+919816000201"},
          {"name": "Mohan Negi", "relation": "father", "phone": "+919816000202", "preferred_language": "en"}],
    "3": [{"name": "लता वर्मा", "relation": "mother", "phone": "+919816000203"}],
    "4": [{"name": "राजेश चौहान", "relation": "father", "phone": "+919816000204"}],
    "5": [{"name": "Geeta Sharma", "relation": "mother", "phone": None}],
    "6": [{"name": "अजय राणा", "relation": "father", "phone": "+919816000206", "opted_out": True}],
}
TEMPLATE = {
    "name": "school holiday (demo)", "kind": "holiday",
    "bodies": {"hi": "प्रिय अभिभावक, {school} में {date} को अवकाश रहेगा। छात्र: {student}, कक्षा {class}",
               "en": "Dear parent, {school} is closed on {date}. Student: {student}, class {class}"},
}
VALUES = {"date": "26 जनवरी (गणतंत्र दिवस)"}


def load_demo_announcements(conn: psycopg.Connection, organization_id: int) -> int | None:
    """Guardians, the template and the announcement, each once; return the demo announcement's id."""
    students = conn.execute(
        """SELECT st.id, st.roll_number FROM students st JOIN classes c ON c.id = st.class_id
             JOIN schools sc ON sc.id = c.school_id
            WHERE sc.organization_id = %s AND sc.udise = %s AND c.grade = 5 AND c.section = 'A'
              AND NOT EXISTS (SELECT 1 FROM guardians g WHERE g.student_id = st.id)""",
        (organization_id, DEMO_UDISE)).fetchall()
    for student in students:
        if student["roll_number"] in GUARDIANS:
            store_guardians(conn, student["id"], [{"preferred_language": "hi", "opted_out": False, **g}
                                                  for g in GUARDIANS[student["roll_number"]]])
    made = conn.execute("SELECT id FROM announcements WHERE organization_id = %s ORDER BY id LIMIT 1",
                        (organization_id,)).fetchone()
    if made:
        return made["id"]
    template = conn.execute("SELECT id FROM sms_templates WHERE organization_id = %s AND name = %s",
                            (organization_id, TEMPLATE["name"])).fetchone()
    template_id = template["id"] if template else templates.create_template(conn, organization_id, TEMPLATE)["id"]
    loader = Caller(organization_id, "demo", "admin", None)  # type: ignore[arg-type]  # the demo loader has no key
    announcement = service.create_announcement(conn, loader, {
        "template_id": template_id, "values": VALUES, "audience": {"school": DEMO_UDISE}})
    log.info("demo announcement %d to %d recipients", announcement["id"], announcement["recipients"])
    return announcement["id"]
