"""Students sign in to sit exams: a school admin issues each student of a class a PIN (printed on a slip with
the class id and roll number), which the student exchanges for a short-lived signed token (a JWT, HS256, PyJWT).

- Only a salted scrypt hash of each PIN is stored (`student_signins`); the PIN is shown once, when issued.
  Issuing again replaces the student's PIN (and ends any lockout). A PIN works until it expires
  (`FIELDPIPE_STUDENT_PIN_DAYS`), so a student whose phone restarts mid-exam signs in again with the same slip.
- Each slip also carries a one-time sign-in code as a QR code: its text is the body to post to the sign-in
  route (`{"code": ...}`), so a phone scans the slip instead of typing three fields. The code is 128 random
  bits, stored as a SHA-256 hash, and works once and until the PIN expires; after that the PIN remains.
- After `max_failures` wrong PINs in a row the student's sign-in locks for `lock_minutes` (kept in PostgreSQL,
  so every API process agrees); a correct PIN during the lock is refused too. A roll number that does not
  exist is refused exactly as a wrong PIN is, after the same work, so sign-in does not reveal who exists.
- The token names the student, their class and organization, and expires after `token_minutes`. It is checked
  without the database (signature and expiry), so posting an answer costs one INSERT; a process remembers the
  tokens it verified until they expire (a phone sends the same token with every answer). It reaches only the
  student routes (`/api/v1/students/<own id>/exams...`): never another student's, never a key route.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt
import psycopg
import segno

from fieldpipe.assessments.roster import get_class_row
from fieldpipe.config import Settings, StudentSignInSettings
from fieldpipe.domains import parse_row_id
from fieldpipe.problems import FieldError, Problem, invalid

PIN_DIGITS = 6
CODE_BYTES = 16  # a sign-in code's randomness: 22 URL-safe characters
CODE_PATTERN = r"^[A-Za-z0-9_-]{22}$"
TOKEN_ALGORITHM = "HS256"
TOKEN_ISSUER = "fieldpipe"
TOKEN_SCOPE = "student"
DEVELOPMENT_KEY = "fieldpipe development student tokens; set FIELDPIPE_STUDENT_TOKEN_KEY"
# scrypt's cost: about 16 MB and tens of milliseconds per PIN, so a stolen table is slow to guess through.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 14, 8, 1
_DUMMY_HASH = None  # a hash to check against for unknown roll numbers, made on first use
# Tokens this process verified: token -> (its exp as a Unix time, its student). Bounded: emptied when full.
VERIFIED_TOKENS_MAX = 20_000
_verified: dict[str, tuple[float, "Student"]] = {}


@dataclass(frozen=True)
class Student:
    """The holder of a valid student token."""

    student_id: int
    class_id: int
    organization_id: int


def hash_pin(pin: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(pin.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return f"scrypt${SCRYPT_N}${salt.hex()}${digest.hex()}"


def pin_matches(pin: str, stored: str) -> bool:
    _, n, salt, digest = stored.split("$")
    candidate = hashlib.scrypt(pin.encode(), salt=bytes.fromhex(salt), n=int(n), r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return hmac.compare_digest(candidate.hex(), digest)


def _token_key() -> str:
    settings = Settings.from_env()
    if settings.student_sign_in.token_key:
        return settings.student_sign_in.token_key
    if settings.webhooks.secret_keys:
        return hmac.new(settings.webhooks.secret_keys[0].encode(), b"student tokens", hashlib.sha256).hexdigest()
    if settings.production:
        raise Problem("unavailable", "FIELDPIPE_STUDENT_TOKEN_KEY is not set, so student tokens cannot be signed")
    return DEVELOPMENT_KEY


def issue_pins(conn: psycopg.Connection, organization_id: int, class_id: Any, payload: Any) -> dict:
    """A new PIN for each current student of the class (or those named in `student_ids`): the slips."""
    klass = get_class_row(conn, organization_id, class_id)
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise invalid([FieldError("", "type", "must be a JSON object")])
    wanted = payload.get("student_ids")
    students = conn.execute(
        """SELECT id, roll_number, name FROM students WHERE class_id = %s AND deleted_at IS NULL AND left_on IS NULL
            ORDER BY roll_number, id""", (klass["id"],)).fetchall()
    if wanted is not None:
        known = {s["id"] for s in students}
        if not isinstance(wanted, list) or not wanted:
            raise invalid([FieldError("student_ids", "type", "must be a non-empty list of student ids")])
        errors = [FieldError(f"student_ids[{n}]", "unknown_student", f"student {s!r} is not a current student of "
                                                                     f"class {klass['id']}")
                  for n, s in enumerate(wanted) if parse_row_id(s) is None or s not in known]
        if errors:
            raise invalid(errors)
        students = [s for s in students if s["id"] in set(wanted)]
    days = Settings.from_env().student_sign_in.pin_days
    slips = [_slip(s) for s in students]
    expires_at = conn.execute(
        """INSERT INTO student_signins (student_id, pin_hash, code_hash, expires_at)
           SELECT student_id, pin_hash, code_hash, now() + make_interval(days => %s)
             FROM unnest(%s::bigint[], %s::text[], %s::text[]) AS t(student_id, pin_hash, code_hash)
           ON CONFLICT (student_id) DO UPDATE
              SET pin_hash = EXCLUDED.pin_hash, code_hash = EXCLUDED.code_hash, code_used_at = NULL,
                  issued_at = now(), expires_at = EXCLUDED.expires_at, failed_attempts = 0, locked_until = NULL
           RETURNING expires_at""",
        (days, [s["student_id"] for s in slips], [hash_pin(s["pin"]) for s in slips],
         [hash_code(s["signin_code"]) for s in slips])).fetchall()
    return {"class_id": klass["id"], "school": klass["udise"], "grade": klass["grade"], "section": klass["section"],
            "expires_at": expires_at[0]["expires_at"] if expires_at else None, "slips": slips}


def hash_code(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def _slip(student: dict) -> dict:
    """A student's new PIN and one-time sign-in code, with the code's QR code (an SVG data URI to print)."""
    code = secrets.token_urlsafe(CODE_BYTES)
    qr_text = json.dumps({"code": code})
    return {"student_id": student["id"], "roll_number": student["roll_number"], "name": student["name"],
            "pin": "".join(secrets.choice("0123456789") for _ in range(PIN_DIGITS)), "signin_code": code,
            "qr_payload": qr_text, "qr_svg": segno.make(qr_text, error="m", micro=False).svg_data_uri(border=2)}


def _check_sign_in(payload: Any) -> tuple[int, str, str]:
    if not isinstance(payload, dict):
        raise invalid([FieldError("", "type", "must be a JSON object {class_id, roll_number, pin} or {code}")])
    errors = [FieldError(k, "unknown_member", "send class_id, roll_number and pin, or the slip's code alone")
              for k in payload if k not in ("class_id", "roll_number", "pin")]
    class_id = parse_row_id(payload.get("class_id")) if isinstance(payload.get("class_id"), int) else None
    if class_id is None:
        errors.append(FieldError("class_id", "required", "must be the class id printed on the slip"))
    roll_number, pin = payload.get("roll_number"), payload.get("pin")
    if not isinstance(roll_number, str) or not roll_number.strip() or len(roll_number) > 64:
        errors.append(FieldError("roll_number", "required", "must be the roll number printed on the slip"))
    if not isinstance(pin, str) or not pin.isascii() or not pin.isdigit() or len(pin) != PIN_DIGITS:
        errors.append(FieldError("pin", "pattern", f"must be the {PIN_DIGITS}-digit PIN printed on the slip"))
    if errors:
        raise invalid(errors)
    return class_id, roll_number.strip(), pin


def _locked(until: dt.datetime) -> Problem:
    return Problem("sign-in-locked", f"too many wrong PINs: sign-in for this student is locked until "
                                     f"{until.isoformat()}; ask for a new slip or wait",
                   extra={"locked_until": until.isoformat()})


def _check_code(payload: dict) -> str:
    errors = [FieldError(k, "unknown_member", "send the code alone, as the slip's QR code has it")
              for k in payload if k != "code"]
    code = payload["code"]
    if not isinstance(code, str) or not re.fullmatch(CODE_PATTERN, code):
        errors.append(FieldError("code", "pattern", "must be the sign-in code of a slip's QR code"))
    if errors:
        raise invalid(errors)
    return code


def sign_in(conn: psycopg.Connection, payload: Any) -> dict:
    """Exchange class id, roll number and PIN (or a slip's one-time code) for a token. A wrong PIN is
    counted and committed before the refusal is raised, so the caller's rollback does not forget it."""
    if isinstance(payload, dict) and "code" in payload:
        return _sign_in_with_code(conn, _check_code(payload))
    class_id, roll_number, pin = _check_sign_in(payload)
    settings = Settings.from_env().student_sign_in
    key = _token_key()
    row = conn.execute(
        """SELECT st.id, st.class_id, st.roll_number, st.name, s.organization_id, si.pin_hash, si.expires_at,
                  si.locked_until, si.locked_until > now() AS locked
             FROM students st
             JOIN classes c ON c.id = st.class_id JOIN schools s ON s.id = c.school_id
             LEFT JOIN student_signins si ON si.student_id = st.id
            WHERE st.class_id = %s AND st.roll_number = %s AND st.deleted_at IS NULL AND st.left_on IS NULL
            FOR UPDATE OF st""", (class_id, roll_number)).fetchone()
    if row is None or row["pin_hash"] is None:
        global _DUMMY_HASH
        _DUMMY_HASH = _DUMMY_HASH or hash_pin("0" * PIN_DIGITS)
        pin_matches(pin, _DUMMY_HASH)  # the same work as for a real student
        raise Problem("unauthenticated", "the class id, roll number or PIN is wrong")
    if row["locked"]:
        raise _locked(row["locked_until"])
    if not pin_matches(pin, row["pin_hash"]) or row["expires_at"] <= dt.datetime.now(dt.timezone.utc):
        failed = conn.execute(
            """UPDATE student_signins
                  SET failed_attempts = CASE WHEN failed_attempts + 1 >= %(max)s THEN 0 ELSE failed_attempts + 1 END,
                      locked_until = CASE WHEN failed_attempts + 1 >= %(max)s
                                          THEN now() + make_interval(mins => %(lock)s) END
                WHERE student_id = %(student)s RETURNING locked_until""",
            {"max": settings.max_failures, "lock": settings.lock_minutes, "student": row["id"]}).fetchone()
        conn.commit()
        if failed["locked_until"] is not None:
            raise _locked(failed["locked_until"])
        raise Problem("unauthenticated", "the class id, roll number or PIN is wrong")
    conn.execute("""UPDATE student_signins SET failed_attempts = 0, locked_until = NULL, last_signed_in_at = now()
                     WHERE student_id = %s""", (row["id"],))
    return _token(row, key, settings)


def _sign_in_with_code(conn: psycopg.Connection, code: str) -> dict:
    """Exchange a slip's one-time code for a token, once. A locked sign-in stays locked for the code too."""
    settings = Settings.from_env().student_sign_in
    key = _token_key()
    row = conn.execute(
        """SELECT st.id, st.class_id, st.roll_number, st.name, s.organization_id, si.expires_at, si.code_used_at,
                  si.locked_until, si.locked_until > now() AS locked, si.expires_at <= now() AS expired
             FROM student_signins si
             JOIN students st ON st.id = si.student_id AND st.deleted_at IS NULL AND st.left_on IS NULL
             JOIN classes c ON c.id = st.class_id JOIN schools s ON s.id = c.school_id
            WHERE si.code_hash = %s
            FOR UPDATE OF si""", (hash_code(code),)).fetchone()
    if row is None or row["expired"]:
        raise Problem("unauthenticated", "the sign-in code is not valid; sign in with the PIN on the slip")
    if row["code_used_at"] is not None:
        raise Problem("unauthenticated", "this slip's sign-in code was used already; sign in with the PIN on the slip")
    if row["locked"]:
        raise _locked(row["locked_until"])
    conn.execute("UPDATE student_signins SET code_used_at = now(), last_signed_in_at = now() WHERE student_id = %s",
                 (row["id"],))
    return _token(row, key, settings)


def _token(row: dict, key: str, settings: StudentSignInSettings) -> dict:
    """A signed token for the student of `row`, and what the sign-in answers."""
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    expires_at = now + dt.timedelta(minutes=settings.token_minutes)
    token = jwt.encode({"iss": TOKEN_ISSUER, "scope": TOKEN_SCOPE, "sub": str(row["id"]), "cls": row["class_id"],
                        "org": row["organization_id"], "iat": now, "exp": expires_at}, key, algorithm=TOKEN_ALGORITHM)
    return {"token": token, "token_type": "Bearer", "expires_at": expires_at,
            "student": {"id": row["id"], "class_id": row["class_id"], "roll_number": row["roll_number"],
                        "name": row["name"]}}


def looks_like_token(credential: str) -> bool:
    """A JWT (three base64url parts) rather than an fpk_ API key."""
    return credential.count(".") == 2 and credential.startswith("eyJ")


def verify_token(token: str) -> Student | None:
    """The token's student, or None when the token is not one of ours, altered or expired. A token verified
    before is taken from this process's memory while it has not expired: the same answer, without the
    signature check and the settings read."""
    hit = _verified.get(token)
    if hit is not None and time.time() < hit[0]:
        return hit[1]
    try:
        claims = jwt.decode(token, _token_key(), algorithms=[TOKEN_ALGORITHM], issuer=TOKEN_ISSUER,
                            options={"require": ["exp", "iat", "sub", "iss"]})
    except jwt.PyJWTError:
        return None
    if claims.get("scope") != TOKEN_SCOPE or not str(claims["sub"]).isdigit():
        return None
    if not all(isinstance(claims.get(k), int) and not isinstance(claims.get(k), bool) for k in ("cls", "org")):
        return None
    student = Student(int(claims["sub"]), claims["cls"], claims["org"])
    if len(_verified) >= VERIFIED_TOKENS_MAX:
        _verified.clear()
    _verified[token] = (float(claims["exp"]), student)  # PyJWT refuses a token once now >= exp
    return student
