"""The school leaving certificate's QR payload and its PDF.

The payload is `FPSLC1.<body>.<signature>`: the body is compact JSON (base64url) with the certificate id,
the student, the school, the leaving date and the signing key's id; the signature is Ed25519 over
`FPSLC1.<body>`, so a verifier with the published public key checks it offline.
"""

from __future__ import annotations

import io
import json
from typing import Any

import segno
from fpdf import FPDF
from fpdf.enums import XPos, YPos

from fieldpipe.enrollment.fonts import devanagari_fonts
from fieldpipe.enrollment.signing import b64url, b64url_decode

PREFIX = "FPSLC1"
MAX_PAYLOAD_LENGTH = 2000


class MalformedPayload(ValueError):
    """Not a certificate payload this system makes."""


def message_for(fields: dict[str, Any]) -> bytes:
    body = json.dumps(fields, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
    return f"{PREFIX}.{b64url(body)}".encode()


def parse_payload(text: str) -> tuple[dict, bytes, bytes]:
    """(fields, signed message, signature) of a payload, or MalformedPayload."""
    if not isinstance(text, str) or len(text) > MAX_PAYLOAD_LENGTH:
        raise MalformedPayload("not a certificate payload")
    parts = text.strip().split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise MalformedPayload(f"a certificate payload has the form {PREFIX}.<body>.<signature>")
    try:
        fields = json.loads(b64url_decode(parts[1]))
        signature = b64url_decode(parts[2])
    except (ValueError, UnicodeDecodeError):
        raise MalformedPayload("the payload's body or signature is not valid base64url JSON") from None
    if not isinstance(fields, dict) or not isinstance(fields.get("k"), str) or not isinstance(fields.get("c"), str):
        raise MalformedPayload("the payload names no key or certificate")
    return fields, f"{parts[0]}.{parts[1]}".encode(), signature


# --- the PDF -------------------------------------------------------------------------------------------------------

# (English label, Hindi label, field of the certificate)
ROWS = [
    ("Certificate number", "प्रमाणपत्र संख्या", "id"),
    ("School", "विद्यालय", "school"),
    ("UDISE code", "यू-डाइस कोड", "udise"),
    ("District / block", "ज़िला / खंड", "place"),
    ("Student's name", "विद्यार्थी का नाम", "name"),
    ("Date of birth", "जन्म तिथि", "date_of_birth"),
    ("Gender", "लिंग", "gender"),
    ("Guardian", "अभिभावक", "guardian"),
    ("Admission number", "प्रवेश संख्या", "admission_number"),
    ("Admitted on", "प्रवेश तिथि", "admitted_on"),
    ("Class when leaving", "छोड़ते समय कक्षा", "class"),
    ("Date of leaving", "विद्यालय छोड़ने की तिथि", "leaving_date"),
    ("Reason for leaving", "विद्यालय छोड़ने का कारण", "reason"),
    ("Issued on", "जारी करने की तिथि", "issued_on"),
]


def render_pdf(details: dict[str, Any], qr_payload: str) -> bytes:
    """An A4 certificate in English and Hindi with the details and the payload's QR code."""
    pdf = FPDF(format="A4")
    pdf.set_title(f"School Leaving Certificate {details['id']}")
    for style, path in devanagari_fonts().items():
        pdf.add_font("NotoDeva", style, path)
    pdf.set_text_shaping(True)  # Devanagari conjuncts and vowel signs need shaping (HarfBuzz)
    pdf.add_page()
    pdf.set_font("NotoDeva", "B", 16)
    pdf.cell(0, 9, "विद्यालय परित्याग प्रमाणपत्र", align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.cell(0, 9, "School Leaving Certificate", align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(4)
    for english, hindi, field in ROWS:
        pdf.set_font("NotoDeva", "B", 10)
        pdf.cell(70, 7, f"{english} / {hindi}")
        pdf.set_font("NotoDeva", "", 10)
        pdf.multi_cell(0, 7, str(details.get(field) or "-"), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    qr = io.BytesIO()
    segno.make(qr_payload, error="m", micro=False).save(qr, kind="png", scale=4, border=2)
    qr.seek(0)
    pdf.ln(4)
    pdf.image(qr, x=pdf.l_margin, w=60)
    pdf.set_font("NotoDeva", "", 8)
    pdf.multi_cell(0, 5, "Scan to verify: the QR code is signed by the issuing organization (key "
                         f"{details['kid']}); public keys at /.well-known/fieldpipe-slc-keys. / "
                         "सत्यापन के लिए QR कोड स्कैन करें।", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    return bytes(pdf.output())
