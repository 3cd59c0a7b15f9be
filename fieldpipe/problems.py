"""Every error a client can see, listed once (RFC 9457 problem details).

Domain code raises `Problem`; the API turns it into an `application/problem+json` answer.
Each entry has a stable code (`<status>.<n>`) that clients can switch on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ProblemType:
    code: str
    status: int
    slug: str
    title: str


def _catalogue(*entries: tuple[str, str, str]) -> dict[str, ProblemType]:
    return {slug: ProblemType(code, int(code.split(".")[0]), slug, title) for code, slug, title in entries}


CATALOGUE = _catalogue(
    ("400.1", "malformed-json", "The request body is not valid JSON"),
    ("400.2", "bad-request", "The request is not well formed"),
    ("401.1", "unauthenticated", "A valid API key is required"),
    ("403.1", "forbidden", "This API key's role may not do this"),
    ("403.30", "same-approver", "A large announcement is approved by an admin key other than the one that made it"),
    ("404.1", "not-found", "No such resource"),
    ("405.1", "method-not-allowed", "This method is not allowed on this resource"),
    ("409.1", "submission-conflict", "A submission with this id already exists with different answers"),
    ("409.2", "already-exists", "A resource with this identifier already exists"),
    # One replay verb for both outboxes: an SMS message (unknown or failed) or a webhook delivery (failed).
    ("409.3", "not-retryable", "This message or delivery cannot be retried in its current state"),
    ("409.20", "duplicate-student", "A student with this name, date of birth and guardian phone is already registered"),
    ("409.21", "certificate-used", "This school leaving certificate has already been used"),
    ("409.22", "student-not-enrolled", "The student is not enrolled in a class"),
    ("409.23", "student-enrolled", "The student is already enrolled in a class"),
    ("409.24", "already-reviewed", "This transfer has already been reviewed"),
    ("409.30", "announcement-state", "The announcement is not in a state that allows this"),
    ("413.1", "payload-too-large", "The request body is larger than the configured limit"),
    ("414.1", "uri-too-long", "The request line (method, path and query) is too long"),
    ("415.1", "unsupported-media-type", "The request body must be application/json"),
    ("422.1", "validation-failed", "The request did not pass validation"),
    ("422.20", "certificate-invalid", "The school leaving certificate's QR payload is not acceptable"),
    ("429.1", "sign-in-locked", "Too many wrong PINs: this student's sign-in is locked for a while"),
    ("431.1", "headers-too-large", "A request header, or all of them together, is too large"),
    ("500.1", "internal-error", "An unexpected error occurred; it has been logged"),
    ("503.1", "unavailable", "A dependency of this service is unavailable"),
)


@dataclass
class FieldError:
    """One offending field: `field` is a JSON-pointer-like path such as `answers.monthly_income`."""

    field: str
    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "code": self.code, "message": self.message}


@dataclass
class Problem(Exception):
    slug: str
    detail: str | None = None
    errors: list[FieldError] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.slug not in CATALOGUE:
            raise KeyError(f"unknown problem type {self.slug!r}")
        super().__init__(self.detail or self.type.title)

    @property
    def type(self) -> ProblemType:
        return CATALOGUE[self.slug]

    @property
    def status(self) -> int:
        return self.type.status

    def as_dict(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"/problems/{self.slug}",
            "title": self.type.title,
            "status": self.status,
            "code": self.type.code,
        }
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        if self.errors:
            body["errors"] = [e.as_dict() for e in self.errors]
        body.update(self.extra)
        return body


def invalid(errors: list[FieldError], detail: str | None = None) -> Problem:
    return Problem("validation-failed", detail or f"{len(errors)} field(s) failed validation", errors)


def not_found(what: str) -> Problem:
    return Problem("not-found", f"{what} was not found")
