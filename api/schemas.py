"""The JSON shapes of the API, declared once as pydantic models and rendered to JSON Schema in the OpenAPI document.

Request models state the bounds the domain enforces (the constants come from `fieldpipe/`), so a request the
document allows is not rejected for a reason it could have stated. What depends on stored data (a form's
questions for `answers`, existing class ids) is checked by the domain and reported as a 422 field error.
Response models describe what the domain's `*_body` functions build; the contract tests validate answers
against them.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, RootModel

from api.spec import Upload, file_part
from fieldpipe import domains, outbox
from fieldpipe.announcements import policy, service as announcements_service, templates as sms_templates
from fieldpipe.answers import CHOICE_TYPES, MASK_MODES, PARTIAL_MASK_TYPES, QUESTION_TYPES
from fieldpipe.enrollment import records
from fieldpipe.enrollment.guardians import (DEFAULT_LANGUAGE as GUARDIAN_LANGUAGE, LANGUAGE_PATTERN,
                                            MAX_GUARDIANS, RELATIONS)
from fieldpipe.enrollment.guardians import MAX_NAME_LENGTH as MAX_GUARDIAN_NAME
from fieldpipe.enrollment.records import GENDERS
from fieldpipe.assessments import definitions, results, roster, submissions
from fieldpipe.forms import KEY_PATTERN
from fieldpipe.operations import notices
from fieldpipe.pipelines import failures as pipeline_failures
from fieldpipe.problems import CATALOGUE
from fieldpipe.responses import MAX_BATCH
from fieldpipe.rules.loader import RULE_ID
from fieldpipe.sms import outbox as sms_outbox
from fieldpipe.tasks import ledger as task_ledger
from fieldpipe.tasks.kinds import RESPONSE_EVENTS
from fieldpipe.webhooks import delivery, registry, targets


def text(max_length: int = domains.STRING_MAX_LENGTH) -> Any:
    """Text that is not blank, within the text domain, at most `max_length` characters."""
    return Annotated[str, Field(min_length=1, max_length=max_length, pattern=r"\S",
                                json_schema_extra={"allOf": [{"pattern": domains.json_schema_string()["pattern"]}]},
                                description=f"Not blank; {domains.TEXT_RULE}")]


Text = text()
Title = text(domains.TITLE_MAX_LENGTH)
Name = text(domains.NAME_MAX_LENGTH)
Percent = Annotated[float, Field(ge=0, le=100)]
Timestamp = Annotated[str, Field(description=domains.json_schema_timestamp()["description"]
                                 + ", e.g. 2026-11-20T10:15:00+05:30",
                                 json_schema_extra={"format": "date-time"},
                                 pattern=r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})$")]
Uuid = Annotated[str, Field(description="A UUID made on the device",
                            pattern=r"^\{?[0-9A-Fa-f]{8}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{12}\}?$")]
Phone = Annotated[str, Field(pattern=r"^\+[1-9][0-9]{6,14}$",
                             description="A phone number in E.164 form (+919812345678) that exists in its country's "
                                         "numbering plan")]
Id = Annotated[int, Field(ge=1, le=2**63 - 1)]


# Values whose rules are the stored form's (a question's type, choices, whether it is required): the document
# cannot state them; the API checks them and names each field it refuses.
CHECKED_AGAINST_QUESTIONS = {"x-checked-against": "the form's questions"}


class Out(BaseModel):
    """Answers: members are always present (null when unknown)."""


# --- problems ------------------------------------------------------------------------------------------------

class FieldErrorOut(Out):
    field: str = Field(description="Where: a dotted path such as answers.monthly_income or students[2].name")
    code: str = Field(description="What is wrong, e.g. required, range, pattern, unknown_parameter")
    message: str


class Problem(Out):
    """RFC 9457 problem details; `code` is stable and listed in the catalogue."""

    type: str = Field(description="/problems/<slug>", examples=["/problems/validation-failed"])
    title: str
    status: int
    code: Literal[tuple(p.code for p in CATALOGUE.values())]  # type: ignore[valid-type]
    detail: Optional[str] = None
    instance: Optional[str] = None
    errors: Optional[list[FieldErrorOut]] = Field(None, description="Each offending field (422 only)")
    request_id: Optional[str] = Field(None, description="The request's id, also in the X-Request-ID header and the "
                                                        "access log: quote it when reporting a problem")


ERROR_MODELS = (Problem,)


# --- forms ---------------------------------------------------------------------------------------------------

class Choice(BaseModel):
    value: Text
    label: Optional[Text] = None


class QuestionBase(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(pattern=KEY_PATTERN.pattern, description="Unique among the form's questions")
    label: Title = Field(None, description="Default: the key")
    required: bool = False
    mask: Union[bool, Literal["hash", "drop"]] = Field(False, description="Masked in exports (true: the type's "
                                                                          "default masking)")
    hint: str = Field(None, description="Shown under the question")


class PlainQuestion(QuestionBase):
    type: Literal[tuple(t for t in QUESTION_TYPES  # type: ignore[misc]
                        if t not in (*CHOICE_TYPES, "repeat", *PARTIAL_MASK_TYPES))]


class ContactQuestion(QuestionBase):
    """Phone and email questions: the only ones that can be masked partially."""

    type: Literal[PARTIAL_MASK_TYPES]  # type: ignore[valid-type]
    mask: Union[bool, Literal[MASK_MODES]] = Field(False, description="Masked in exports")  # type: ignore[valid-type]


class ChoiceQuestion(QuestionBase):
    type: Literal[CHOICE_TYPES]  # type: ignore[valid-type]
    choices: list[Choice] = Field(min_length=1, description="Values unique within the question")


class RepeatQuestion(QuestionBase):
    """A group answered any number of times (a list of objects keyed by its questions)."""

    type: Literal["repeat"]
    questions: list["Question"] = Field(min_length=1)


Question = Annotated[Union[PlainQuestion, ContactQuestion, ChoiceQuestion, RepeatQuestion], Field()]
RepeatQuestion.model_rebuild()


class SmsReceipt(BaseModel):
    phone_question: str = Field(description="The key of a phone question of the form",
                                json_schema_extra=CHECKED_AGAINST_QUESTIONS)
    template: Text


class SheetTarget(BaseModel):
    spreadsheet_id: Text
    worksheet: Text = Field(None, description="Default: Responses")


class ImportRowError(Out):
    row: int = Field(description="The file's row (the header is row 1)")
    column: Optional[str]
    code: str
    reason: str


class Import(Out):
    """An import of a file of responses: its state, counts and (one import only) the rows it refused."""

    id: str
    organization: str
    form: str
    file: str
    source: Literal["upload", "s3"] = Field(description="upload: through the API; s3: a file dropped in the bucket")
    status: Literal["queued", "running", "done", "failed"]
    code: Optional[str] = Field(description="Why the whole file was refused, e.g. unknown_column")
    reason: Optional[str]
    rows: int
    created: Optional[int]
    duplicate: Optional[int]
    conflict: Optional[int]
    invalid: Optional[int]
    object_key: str
    report_key: Optional[str]
    created_at: dt.datetime
    started_at: Optional[dt.datetime]
    finished_at: Optional[dt.datetime]
    errors: Optional[list[ImportRowError]] = Field(None, description="The first 1000 refused rows (one import only)")
    errors_truncated: Optional[bool] = Field(None, description="More rows were refused than listed (one import only)")


class ImportSettings(BaseModel):
    receipts: bool = Field(True, description="Imported responses get SMS receipts too")


class FormSettings(BaseModel):
    sms_receipt: Optional[SmsReceipt] = None
    sheet: Optional[SheetTarget] = None
    imports: Optional[ImportSettings] = None


class FormInput(BaseModel):
    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    title: Title
    questions: list[Question] = Field(min_length=1)
    settings: FormSettings = Field(default_factory=FormSettings, description="Free-form beyond the members shown")


class FormPatch(BaseModel):
    """Members sent replace the stored ones; changed questions make a new version."""

    title: Title = None
    questions: list[Question] = Field(None, min_length=1)
    settings: FormSettings = None


XFORM_TYPES = ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "application/vnd.ms-excel",
               "text/xml")
XFORM_UPLOAD = Upload(
    parts={"file": file_part("An XLSForm (.xlsx, .xlsm, .xls) or an XForm (.xml); the name's extension says which",
                             checked_against="the XLSForm (pyxform) or XForm grammar"),
           "media": file_part("Files the form shows (jr://images/..., CSV choices), listed in its OpenRosa manifest; "
                              "names without path separators", many=True),
           "slug": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9-]{0,62}$", "description": "Default: from the XForm id"},
           "title": {"type": "string", "minLength": 1, "maxLength": domains.TITLE_MAX_LENGTH, "pattern": r"\S",
                     "description": "Default: the XForm's title"},
           "settings": {"type": "string", "contentMediaType": "application/json",
                        "contentSchema": {"$ref": "#/components/schemas/FormSettings"},
                        "description": "The form's settings as JSON text (as in the JSON body)"}},
    required=("file",), encoding={"file": XFORM_TYPES})


class Form(Out):
    slug: str
    title: str
    version: int
    settings: dict[str, Any]
    questions: list[dict[str, Any]]
    created_at: dt.datetime
    updated_at: dt.datetime


# --- responses -----------------------------------------------------------------------------------------------

class Collector(BaseModel):
    id: Name
    phone: Optional[Phone] = None


class Submission(BaseModel):
    submission_id: Uuid
    submitted_at: Timestamp
    collector: Collector
    form_version: Optional[int] = Field(None, description="Default: the form's current version")
    answers: dict[str, Any] = Field(description="Question key to answer, checked against the form's questions",
                                    json_schema_extra=CHECKED_AGAINST_QUESTIONS)


IMPORT_TYPES = ("text/csv", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
IMPORT_UPLOAD = Upload(
    parts={"file": file_part("A CSV or XLSX file of responses, one row each, columns as in GET .../imports/template; "
                             "its rows are checked against the form's questions when it is imported (the import's "
                             "report lists the rows it refused)", checked_against="the form's questions, row by row")},
    required=("file",), encoding={"file": IMPORT_TYPES})
OPENROSA_SUBMISSION = Upload(
    parts={"xml_submission_file": file_part("The submission's instance XML (OpenRosa form submission API)",
                                            checked_against="the form's XForm and questions")},
    required=("xml_submission_file",),
    other_parts=file_part("An attachment the instance names (a photo, audio): the part's file name, without path "
                          "separators"),
    encoding={"xml_submission_file": ("text/xml", "application/xml")})


ANSWER_FILTER = {"type": "string", "x-checked-against": "the form's questions: `answer.<key>` names a choice or "
                                                      "boolean question, and the value is one it takes"}


class Batch(BaseModel):
    items: list[Submission] = Field(min_length=1, max_length=MAX_BATCH)


class ResponsePatch(BaseModel):
    """A new revision; members left out keep their current values."""

    submitted_at: Timestamp = None
    collector: Collector = None
    form_version: int = None
    answers: dict[str, Any] = Field(None, json_schema_extra=CHECKED_AGAINST_QUESTIONS)


class CollectorOut(Out):
    id: str
    phone: Optional[str]


class TaskNotRun(Out):
    task_id: int
    kind: str
    reason: Literal["timeout", "error", "not_installed"] = Field(
        description="timeout: still running when the submission's time budget ended; error: it raised")


class SyncTasksOut(Out):
    """What the form's sync tasks gave for a new submission; the submission is stored whatever they did."""

    results: dict[str, Any] = Field(description="Each finished task's output, by task id")
    not_run: list[TaskNotRun] = Field(description="The tasks that did not run, and why")


class Response(Out):
    submission_id: str
    form: str
    form_version: int
    revision: int
    collector: CollectorOut
    submitted_at: dt.datetime
    received_at: dt.datetime
    updated_at: dt.datetime
    answers: dict[str, Any]
    warnings: Optional[list[dict[str, Any]]] = Field(None, description="Warning-severity rules this response breaks")
    flags: Optional[list[dict[str, Any]]] = Field(None, description="Open flags (GET of one response)")
    tasks: Optional[SyncTasksOut] = Field(None, description="The form's sync tasks on this submission (a new one)")


class BatchSummary(Out):
    created: int
    duplicate: int
    conflict: int
    invalid: int


class BatchItemResult(Out):
    index: int
    submission_id: Optional[str]
    status: Literal["created", "duplicate", "conflict", "invalid"]
    errors: Optional[list[FieldErrorOut]] = None
    warnings: Optional[list[dict[str, Any]]] = None


class BatchResult(Out):
    summary: BatchSummary
    results: list[BatchItemResult]


class Revision(Out):
    revision: int
    form_version: int
    collector: CollectorOut
    submitted_at: dt.datetime
    created_at: dt.datetime
    answers: dict[str, Any]


class Attachment(Out):
    name: str
    question_type: Optional[str]
    content_type: Optional[str]
    size: Optional[int]
    sha256: Optional[str]
    received_at: Optional[dt.datetime]
    received: bool = Field(description="false while the device has not sent the file yet")


class Flag(Out):
    id: int
    submission_id: str
    revision: int
    rule_id: str
    severity: Literal["error", "warning"]
    notify: str
    message: str
    status: Literal["open", "closed"]
    close_reason: Optional[str]
    opened_at: dt.datetime
    closed_at: Optional[dt.datetime]


class PipelineFailure(Out):
    """A form a pipeline could not process on its last attempt; removed when the form next succeeds."""

    pipeline: Literal[pipeline_failures.PIPELINES]  # type: ignore[valid-type]
    form: str = Field(description="The form's slug")
    error: str = Field(description="The error's class, or RulesBroken / RuleFailed for a form's rules")
    reason: str = Field(description="What failed and where; never submitted data")
    failures: int = Field(description="Runs in a row that failed for this form")
    first_failed_at: dt.datetime
    last_failed_at: dt.datetime


# --- outbound: SMS and webhooks --------------------------------------------------------------------------------

LEASE_UNTIL = ("While sending: when the claim runs out (past it, the worker that claimed it is taken to have "
               "stopped)")


class Attempt(Out):
    """One attempt at an SMS send or a webhook delivery (the same shape for both)."""

    attempt: int
    at: dt.datetime
    outcome: Literal[outbox.OUTCOMES]  # type: ignore[valid-type]
    status_code: Optional[int] = Field(description="HTTP status the provider or endpoint answered")
    error_code: Optional[str] = Field(description="The SMS provider's own error code")
    error: Optional[str]
    duration_ms: Optional[int] = Field(description="How long the webhook endpoint took")
    retry_after_s: Optional[float] = Field(description="The wait the provider asked for")


class Message(Out):
    id: int
    dedupe_key: str
    kind: str
    recipient: str
    body: str
    template: Optional[str]
    encoding: str
    segments: int
    status: Literal[sms_outbox.STATUSES]  # type: ignore[valid-type]
    attempts: int
    next_attempt_at: dt.datetime
    lease_until: Optional[dt.datetime] = Field(description=LEASE_UNTIL)
    provider: Optional[str]
    provider_message_id: Optional[str]
    last_error: Optional[str]
    created_at: dt.datetime
    updated_at: dt.datetime
    sent_at: Optional[dt.datetime]
    history: Optional[list[Attempt]] = Field(None, description="Every attempt, oldest first (one message only)")


class Notice(Out):
    """One notice to the organization's operators; an incident open until resolved is announced once."""

    id: int
    incident: str = Field(description="What it is about, e.g. task:validate_responses.validate_form[household-survey]")
    kind: Literal[notices.KINDS]  # type: ignore[valid-type]
    subject: str
    body: str
    data: dict[str, Any]
    email_status: Literal["pending", "sent", "failed", "none"] = Field(
        description="none: no recipients; pending: to be sent or retried")
    email_attempts: int
    email_last_error: Optional[str]
    emailed_at: Optional[dt.datetime]
    created_at: dt.datetime
    resolved_at: Optional[dt.datetime]


class NoticeRecipients(BaseModel):
    emails: list[Annotated[str, Field(max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]] = Field(
        max_length=notices.MAX_RECIPIENTS)


class Requeued(Out):
    requeued: int = Field(description="How many items were queued again")


# An absolute http(s) URL: a host name or IPv4 address, a port within range, no credentials, spaces or controls.
WEB_URL = (r"^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?"
           r"(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4}))?([/?#][!-~]*)?$")


class WebhookInput(BaseModel):
    url: str = Field(max_length=targets.MAX_URL_LENGTH, pattern=WEB_URL,
                     description="An http(s) URL without credentials; https and a public address in production")
    events: list[Literal[registry.EVENTS]] = Field(min_length=1)  # type: ignore[valid-type]


class Circuit(Out):
    consecutive_failures: int
    open_until: Optional[dt.datetime]


class Webhook(Out):
    id: int
    url: str
    events: list[str]
    created_at: dt.datetime
    circuit: Circuit


class WebhookCreated(Webhook):
    secret: str = Field(description="The HMAC-SHA256 signing secret (whsec_...); shown only in this answer")


class Delivery(Out):
    id: int
    webhook_id: int
    url: str
    event: Literal[registry.EVENTS + RESPONSE_EVENTS]  # type: ignore[valid-type]
    event_key: str
    status: Literal[delivery.STATUSES]  # type: ignore[valid-type]
    attempts: int
    last_status_code: Optional[int]
    last_error: Optional[str]
    created_at: dt.datetime
    updated_at: dt.datetime
    next_attempt_at: dt.datetime
    lease_until: Optional[dt.datetime] = Field(description=LEASE_UNTIL)
    give_up_at: dt.datetime
    delivered_at: Optional[dt.datetime]
    body: Optional[str] = Field(None, description="The exact JSON sent (one delivery only)")
    history: Optional[list[Attempt]] = Field(None, description="Every attempt, oldest first (one delivery only)")


# --- post-submission tasks per form ---------------------------------------------------------------------------

CHECKED_AGAINST_KIND = {"x-checked-against": "the task kind's own JSON Schema (kinds are installed plugins)"}


class TaskInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str = Field(min_length=1, max_length=100, description="An installed task kind: rules, archive, "
                      "sms_receipt, sheet_export, webhook, or one a plugin adds (entry point group fieldpipe.tasks)")
    config: dict[str, Any] = Field(default_factory=dict, description="Checked against the kind's JSON Schema",
                                   json_schema_extra=CHECKED_AGAINST_KIND)
    enabled: bool = True
    mode: Optional[Literal["sync", "async"]] = Field(None, description="Fixed by the kind; may be omitted",
                                                     json_schema_extra=CHECKED_AGAINST_KIND)


class TaskPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    config: Optional[dict[str, Any]] = Field(None, description="Replaces the whole configuration",
                                             json_schema_extra=CHECKED_AGAINST_KIND)
    enabled: bool = None


class Task(Out):
    id: int
    kind: str
    mode: Literal["sync", "async"]
    config: dict[str, Any]
    events: list[Literal[RESPONSE_EVENTS]] = Field(  # type: ignore[valid-type]
        description="The response events an async task runs on")
    enabled: bool
    created_at: dt.datetime
    updated_at: dt.datetime


class TaskCreated(Task):
    secret: Optional[str] = Field(None, description="A webhook task's signing secret, shown only in this answer")


class TaskRun(Out):
    id: int
    submission_id: str
    revision: int
    status: Literal[task_ledger.STATUSES]  # type: ignore[valid-type]
    attempts: int
    next_attempt_at: dt.datetime
    last_error: Optional[str]
    outcome: Optional[Any]
    replay_id: Optional[int]
    created_at: dt.datetime
    updated_at: dt.datetime
    finished_at: Optional[dt.datetime]


class ReplayInput(BaseModel):
    """`to` must be later than `from` (422 `order`)."""

    model_config = ConfigDict(extra="forbid")
    from_: Timestamp = Field(alias="from", description="Responses received at or after this time")
    to: Timestamp = Field(description="... and before this time")


class ReplayRuns(Out):
    queued: int
    sending: int
    done: int
    skipped: int
    failed: int


class Replay(Out):
    id: int
    task_id: int
    from_: dt.datetime = Field(alias="from")
    to: dt.datetime
    status: Literal["pending", "running", "done"] = Field(
        description="pending until the run_tasks pipeline starts it; done when none of its runs is left to run")
    responses: int = Field(description="Responses received in the range")
    queued_by_replay: Optional[int] = Field(description="Runs the replay queued (the others had run already)")
    runs: ReplayRuns = Field(description="The task's runs for the range's responses, by status")
    created_at: dt.datetime
    started_at: Optional[dt.datetime]


# --- schools and assessments ----------------------------------------------------------------------------------

class SchoolInput(BaseModel):
    udise: str = Field(pattern=roster.UDISE_PATTERN.pattern, description="The school's 11-digit UDISE code")
    name: Text
    district: Text
    block: Text
    time_zone: Optional[TimeZone] = Field(None, description="IANA time zone (quiet hours of announcements); null: the "
                                                       "organization's, GET /api/v1/sms-policy")


class School(Out):
    udise: str
    name: str
    district: str
    block: str
    time_zone: Optional[str]


class ClassInput(BaseModel):
    grade: int = Field(ge=1, le=12)
    section: Text = "A"


class Class(Out):
    id: int
    school: str
    grade: int
    section: str


TimeZone = Annotated[str, Field(json_schema_extra={"enum": sorted(policy.time_zones())})]
PastDate = Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$", json_schema_extra={"format": "date"},
                                description="YYYY-MM-DD, not in the future")]


class GuardianInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: text(MAX_GUARDIAN_NAME)  # type: ignore[valid-type]
    relation: Literal[RELATIONS]  # type: ignore[valid-type]
    phone: Optional[Phone] = None
    preferred_language: str = Field(GUARDIAN_LANGUAGE, pattern=LANGUAGE_PATTERN.pattern, description="ISO 639-1")
    opted_out: bool = Field(False, description="No SMS to this guardian")


class StudentInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    roll_number: text(20) | Annotated[int, Field(ge=0, le=domains.INTEGER_MAX)]  # type: ignore[valid-type]
    name: Text
    parent_phone: Optional[Phone] = None
    guardians: Optional[list[GuardianInput]] = Field(None, min_length=1, max_length=MAX_GUARDIANS,
                                                     description="Phones optional here. Listed guardians replace the "
                                                                 "student's")


STUDENTS_CSV = {
    "type": "string", "contentMediaType": "text/csv",
    "description": "UTF-8 CSV with a header naming roll_number and name, optionally parent_phone and one guardian "
                   "per row (guardian_name, guardian_relation, guardian_phone, guardian_language, guardian_opted_out: "
                   "true/false, yes/no, 1/0); each row follows the rules of StudentInput, and errors name "
                   "students[<row>].<member> as for the JSON body"}


class StudentImport(BaseModel):
    students: list[StudentInput] = Field(min_length=1, max_length=roster.MAX_STUDENT_IMPORT)


class Guardian(Out):
    name: str
    relation: Literal[RELATIONS]  # type: ignore[valid-type]
    phone: Optional[str] = Field(description="E.164")
    preferred_language: str = Field(description="ISO 639-1")
    opted_out: bool = Field(description="No SMS to this guardian")


class EnrollmentPeriod(Out):
    school: str
    school_name: str
    class_id: int
    grade: int
    section: str
    started_on: Optional[dt.date] = Field(alias="from")
    ended_on: Optional[dt.date] = Field(alias="to")
    started_by: Literal["roster", "admission", "transfer", "out_of_state"]


class CertificateSummary(Out):
    id: str
    leaving_date: dt.date
    reason: str
    kid: str
    issued_at: dt.datetime
    revoked_at: Optional[dt.datetime]
    used_at: Optional[dt.datetime]
    pdf_url: str


class Certificate(CertificateSummary):
    qr_payload: str = Field(description="The text of the certificate's QR code")
    student_id: Optional[int] = Field(None, description="When the certificate is read alone")


class Student(Out):
    """One shape wherever a student is answered (rosters, enrollment, one student). A student who left has no
    current class, school or roll number."""

    id: int
    name: str
    status: Literal["enrolled", "left"]
    class_id: Optional[int]
    school: Optional[str] = Field(description="The school's UDISE code")
    roll_number: Optional[str]
    left_on: Optional[dt.date]
    deleted_at: Optional[dt.datetime]
    date_of_birth: Optional[dt.date]
    gender: Optional[Literal[GENDERS]]  # type: ignore[valid-type]
    admission_number: Optional[str]
    previous_school: Optional[str]
    parent_phone: Optional[str]
    guardians: list[Guardian]
    enrollments: Optional[list[EnrollmentPeriod]] = Field(None, description="Every enrollment period, oldest first "
                                                                            "(one student only)")
    certificates: Optional[list[CertificateSummary]] = Field(None, description="School leaving certificates "
                                                                               "(one student only)")
    transfer_review: Optional[dict[str, Any]] = Field(None, description="A transfer from another state: its review "
                                                                        "(when enrolling one)")


class LeaveResult(Out):
    student: Student
    slc: Certificate


class StudentImportResult(Out):
    created: int
    updated: int
    unchanged: int
    students: list[Student] = Field(description="The students this import named")


class SubjectInput(BaseModel):
    code: str = Field(pattern=roster.CODE_PATTERN.pattern)
    name: Text


class Subject(Out):
    code: str
    name: str


class AssessmentItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(pattern=definitions.ITEM_KEY.pattern, description="Unique within the assessment")
    label: Optional[str] = None
    max_marks: float = Field(gt=0, lt=domains.DECIMAL_MAX_ABS)


class ExamQuestion(AssessmentItem):
    choices: list[Text] = Field(min_length=2, description="Distinct options", json_schema_extra={"uniqueItems": True})
    answer_key: Text = Field(description="One of the choices")


class MarksStep(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grade: Text = Field(description="Unique within the scale")
    min_percent: Percent = Field(description="Falling from the best grade down")


class GradeStep(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grade: Text = Field(description="Unique within the scale")
    min_percent: Optional[Percent] = None


class MarksPass(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min_percent: Percent


class GradePass(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min_grade: Text = Field(description="A grade of the grade scale")


class AssessmentBase(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: Text
    subject: Optional[str] = Field(None, description="A subject code")
    type: Literal[definitions.TYPES]  # type: ignore[valid-type]
    outcome: Literal[definitions.SUPPORTED_OUTCOMES]  # type: ignore[valid-type]
    class_ids: list[Id] = Field(min_length=1)
    deadline: Optional[Timestamp] = None
    sheet: Optional[SheetTarget] = None


class MarksAssessment(AssessmentBase):
    """Marks per item; passing at `pass_criterion.min_percent`; grades (optional) by falling `min_percent`."""

    evaluation: Literal["Marks"]
    level: Literal["student", "class"] = "student"
    items: list[AssessmentItem] = Field(min_length=1)
    grade_scale: list[MarksStep] = Field(default_factory=list, description="Best grade first")
    pass_criterion: MarksPass


class MarksExam(MarksAssessment):
    """An exam: multiple-choice questions graded against their answer keys."""

    level: Literal["exam"]  # type: ignore[assignment]
    items: list[ExamQuestion] = Field(min_length=1)  # type: ignore[assignment]


class GradeAssessment(AssessmentBase):
    """A grade per item; passing from `pass_criterion.min_grade` up."""

    evaluation: Literal["Grade"]
    level: Literal["student", "class"] = "student"
    items: list[AssessmentItem] = Field(min_length=1)
    grade_scale: list[GradeStep] = Field(min_length=1, description="Best grade first")
    pass_criterion: GradePass


class GradeExam(GradeAssessment):
    level: Literal["exam"]  # type: ignore[assignment]
    items: list[ExamQuestion] = Field(min_length=1)  # type: ignore[assignment]


class AssessmentInput(RootModel[Union[MarksAssessment, MarksExam, GradeAssessment, GradeExam]]):
    """One of: Marks or Grade evaluation, of students or classes (`level` student or class) or an exam."""


class AssessmentPatch(BaseModel):
    """Only these members can change; items, scale and criterion are fixed once marks may exist."""

    model_config = ConfigDict(extra="forbid")
    title: Text = None
    deadline: Optional[Timestamp] = Field(None, description="null removes the deadline")
    class_ids: list[Id] = Field(None, min_length=1)
    sheet: Optional[SheetTarget] = Field(None, description="null removes the sheet")
    answer_keys: Optional[dict[str, str]] = Field(None, description="Exams: question key to the corrected choice; "
                                                  "regrades exactly the answers graded against the old key")


class Assessment(Out):
    id: int
    title: str
    subject: Optional[str]
    type: str
    evaluation: str
    outcome: str
    level: str
    items: list[dict[str, Any]]
    grade_scale: list[dict[str, Any]]
    pass_criterion: dict[str, Any]
    class_ids: list[int]
    deadline: Optional[dt.datetime]
    sheet: Optional[dict[str, Any]]
    updated_at: dt.datetime
    closed_at: Optional[dt.datetime] = Field(None, description="Exams: when the exam was closed to answers and graded")
    classes: Optional[list[dict[str, Any]]] = Field(None, description="In listings: each class with its submission count")


class SubmissionEnvelope(BaseModel):
    submission_id: Uuid
    class_id: Id
    submitted_at: Timestamp
    collector: Collector


CHECKED_AGAINST_ASSESSMENT = {"x-checked-against": "the assessment's evaluation (Marks or Grade), items and scale"}


class StudentEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    student_id: Id
    is_present: bool
    marks: dict[str, Annotated[float, Field(ge=0, lt=domains.DECIMAL_MAX_ABS)]] = Field(
        None, description="Item key to marks (Marks evaluation; present students)", json_schema_extra=CHECKED_AGAINST_ASSESSMENT)
    grades: dict[str, str] = Field(None, description="Item key to grade (Grade evaluation; present students)",
                                   json_schema_extra=CHECKED_AGAINST_ASSESSMENT)


class StudentSubmission(SubmissionEnvelope):
    entries: list[StudentEntry] = Field(min_length=1, max_length=submissions.MAX_ENTRIES)


class ClassResult(BaseModel):
    item: str = Field(description="The key of one of the assessment's items",
                      json_schema_extra={"x-checked-against": "the assessment's items"})
    present: int = Field(ge=0, le=submissions.MAX_CLASS_SIZE, description="Students present")
    cleared: int = Field(ge=0, le=submissions.MAX_CLASS_SIZE, description="Students who cleared it; at most present")


class ClassSubmission(SubmissionEnvelope):
    results: list[ClassResult] = Field(min_length=1, max_length=submissions.MAX_ENTRIES)


class ExamAnswer(BaseModel):
    student_id: Id
    question: str
    answer: str


class ExamAnswers(SubmissionEnvelope):
    answers: list[ExamAnswer] = Field(min_length=1, max_length=submissions.MAX_ENTRIES)


class SubmissionReceipt(Out):
    submission_id: str
    assessment_id: int
    class_id: int
    kind: str
    entries: int
    submitted_at: dt.datetime
    received_at: dt.datetime


class StudentMarksReadBack(Out):
    """A student's current marks (Marks evaluation) or grades (Grade evaluation), as the app last sent them."""

    student_id: int
    class_id: int
    is_present: bool = Field(description="Present for at least one item")
    marks: Optional[dict[str, float]] = Field(None, description="Marks evaluation: item key to marks, items present")
    grades: Optional[dict[str, str]] = Field(None, description="Grade evaluation: item key to grade, items present")
    submission_id: str = Field(description="The batch that last changed this student's marks")
    received_at: dt.datetime


class ClassResultReadBack(Out):
    class_id: int
    item: str
    present: int
    cleared: int
    submission_id: str = Field(description="The batch that sent these numbers")
    received_at: dt.datetime


class StudentResult(Out):
    """One student's result as of an instant (fieldpipe/assessments/results.py)."""

    student_id: int
    class_id: int
    roll_number: str
    name: str
    status: Literal[results.STATUSES] = Field(  # type: ignore[valid-type]
        description="assessed; absent (absent on every item, or an exam with no answer); not_assessed (no marks yet)")
    marks: dict[str, Optional[float]] = Field(description="Per item key: the marks counted (null when absent, "
                                                          "not marked or not yet graded)")
    grades: dict[str, Optional[str]] = Field(description="Per item key: the grade given or earned")
    total_marks: Optional[float] = Field(description="Marks of the items present; null when absent or graded")
    max_marks: Optional[float] = Field(description="The sum of every item's maximum (null for Grade evaluation)")
    percentage: Optional[float] = Field(description="total_marks / max_marks × 100, two decimals")
    grade: Optional[str] = Field(description="From the assessment's grade scale")
    passed: Optional[bool] = Field(description="Meets the pass criterion; false when absent, null when not assessed")


class ExamClosed(Out):
    id: int
    closed_at: dt.datetime
    answers_graded: int = Field(description="Answers graded by this close (answers graded before are not counted)")
    students_answered: int
    results: str = Field(description="Where the results are listed")


class PinIssue(BaseModel):
    model_config = ConfigDict(extra="forbid")
    student_ids: Optional[list[Id]] = Field(None, min_length=1, description="Default: every current student of the class")


class PinSlip(Out):
    student_id: int
    roll_number: str
    name: str
    pin: str = Field(description="Shown once; only a hash is stored")
    signin_code: str = Field(description="A one-time sign-in code (shown once; only a hash is stored): "
                                         "`POST /api/v1/auth/student` with `{\"code\": ...}`")
    qr_payload: str = Field(description="The text of the slip's QR code: the sign-in body `{\"code\": ...}`")
    qr_svg: str = Field(description="The QR code as an SVG data URI, to print on the slip")


class PinSlips(Out):
    class_id: int
    school: str
    grade: int
    section: str
    expires_at: Optional[dt.datetime] = Field(description="When these PINs stop working")
    slips: list[PinSlip]


class PinSignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    class_id: Id = Field(description="Printed on the slip")
    roll_number: str = Field(min_length=1, max_length=64)
    pin: str = Field(pattern=r"^[0-9]{6}$")


class CodeSignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(pattern=r"^[A-Za-z0-9_-]{22}$", description="The slip's one-time code (its QR code); works once")


class StudentSignIn(RootModel[Union[PinSignIn, CodeSignIn]]):
    """The slip's class id, roll number and PIN, or its one-time code (scanned from its QR code)."""


class StudentToken(Out):
    token: str = Field(description="Send as 'Authorization: Bearer <token>' to the student routes")
    token_type: Literal["Bearer"]
    expires_at: dt.datetime
    student: dict[str, Any]


CHECKED_AGAINST_EXAM = {"x-checked-against": "the exam's questions"}


class StudentAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answer_id: Uuid = Field(description="Made on the device for this answer: a retried post is stored once")
    question: str = Field(min_length=1, max_length=domains.STRING_MAX_LENGTH, json_schema_extra=CHECKED_AGAINST_EXAM,
                          description="The key of one of the exam's questions")
    answer: str = Field(min_length=1, max_length=domains.STRING_MAX_LENGTH,
                        json_schema_extra={"x-checked-against": "the question's choices"},
                        description="One of the question's choices")


class AnswerReceipt(Out):
    answer_id: str
    assessment_id: int
    question: str
    answer: str
    received_at: dt.datetime


class StudentExam(Assessment):
    answers: dict[str, str] = Field(description="The student's latest answer per question so far")


class OwnAnswers(Out):
    assessment_id: int
    student_id: int
    closed: bool
    answers: dict[str, str]


class Summary(Out):
    assessment_id: int
    level: str
    date: Optional[dt.date]
    rows: list[dict[str, Any]]


# --- business rules --------------------------------------------------------------------------------------------

CHECKED_AGAINST_RULES = {"x-checked-against": "the form's questions and the rules grammar (docs/rules.md)"}


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=RULE_ID.pattern)
    expression: Text = Field(description="docs/rules.md: answers by key, arithmetic, comparisons, and/or/not, "
                                         "count(), matches(), today, date(...)")
    message: Text = Field(description="Shown to the collector; {key} quotes an answer")
    severity: Literal["error", "warning"] = "error"
    notify: Literal["collector", "none"] = "none"
    description: Optional[str] = None


class Expectation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=RULE_ID.pattern)
    expectation: Text = Field(description="A Great Expectations expectation, e.g. expect_column_values_to_be_between")
    kwargs: dict[str, Any]
    message: Text
    severity: Literal["error", "warning"] = "error"
    notify: Literal["collector", "none"] = "none"
    description: Optional[str] = None


class RulesDocument(BaseModel):
    """The JSON form of a rules file; checked against the form's questions when saved or dry-run."""

    model_config = ConfigDict(extra="forbid")
    # Expressions, messages and expectations name the form's answers and follow docs/rules.md's grammar: the
    # API parses them against the stored questions and lists each problem with its rule id.
    rules: list[Rule] = Field(default_factory=list, json_schema_extra=CHECKED_AGAINST_RULES)
    expectations: list[Expectation] = Field(default_factory=list, json_schema_extra=CHECKED_AGAINST_RULES)


class RulesVersion(Out):
    version: Optional[int] = Field(description="null when the form has no rules")
    created_at: Optional[dt.datetime]
    created_by: Optional[str]
    rules: list[dict[str, Any]]
    expectations: list[dict[str, Any]]


class RulesVersionSummary(Out):
    version: int
    created_at: dt.datetime
    created_by: str
    rules: int
    expectations: int
    in_force: bool


class DryRunRule(Out):
    id: str
    would_flag: Optional[int]
    examples: Optional[list[str]] = None
    error: Optional[str] = Field(None, description="Only for a rule that fails in PostgreSQL")


class DryRunResult(Out):
    responses_evaluated: int
    rules: list[DryRunRule]


class DryRunJob(Out):
    id: int
    status: Literal["queued", "running", "done", "failed"]
    latest: Optional[int]
    poll: str
    created_at: dt.datetime
    created_by: str
    finished_at: Optional[dt.datetime]
    error: Optional[str]
    result: Optional[DryRunResult]


# --- enrollment (issue 19; shapes in docs/enrollment.md) ---------------------------------------------------------

EnrollmentText = text(records.MAX_TEXT)
RollNumber = Annotated[Union[text(20), Annotated[int, Field(ge=-(10**18), le=10**19)]],  # type: ignore[valid-type]
                       Field(description="Default: the next number in the class")]


class OutOfStateDocument(BaseModel):
    """The other state's transfer certificate, for review."""

    model_config = ConfigDict(extra="forbid")
    state: EnrollmentText  # type: ignore[valid-type]
    school_name: EnrollmentText  # type: ignore[valid-type]
    certificate_number: EnrollmentText  # type: ignore[valid-type]
    issued_on: PastDate
    document_url: str = Field(None, max_length=2000, pattern=WEB_URL, description="http(s) URL of the document")


class NewStudent(BaseModel):
    """A new student, or (with `out_of_state`) one transferred from another state, waiting for review."""

    model_config = ConfigDict(extra="forbid")
    class_id: Id
    name: EnrollmentText  # type: ignore[valid-type]
    date_of_birth: PastDate
    gender: Literal[GENDERS]  # type: ignore[valid-type]
    guardians: list[GuardianInput] = Field(min_length=1, max_length=MAX_GUARDIANS,
                                           description="At least one with a phone")
    admission_number: Optional[EnrollmentText] = None  # type: ignore[valid-type]
    previous_school: Optional[EnrollmentText] = None  # type: ignore[valid-type]
    roll_number: Optional[RollNumber] = None
    admitted_on: PastDate = Field(None, description="Default: today; not before the date of birth")
    out_of_state: OutOfStateDocument = None


class StateTransfer(BaseModel):
    """A student moving in from another school of the state, by their school leaving certificate."""

    model_config = ConfigDict(extra="forbid")
    class_id: Id
    slc_qr_payload: Text = Field(description="The text of the certificate's QR code")
    roll_number: Optional[RollNumber] = None
    admission_number: Optional[EnrollmentText] = None  # type: ignore[valid-type]
    admitted_on: PastDate = Field(None, description="Default: today; not before the leaving date")


class EnrollmentInput(RootModel[Union[NewStudent, StateTransfer]]):
    """A new student (from another state with `out_of_state`), or a transfer within the state (`slc_qr_payload`);
    docs/enrollment.md."""


class LeaveInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: EnrollmentText  # type: ignore[valid-type]
    date: PastDate = Field(description="The leaving date: YYYY-MM-DD, not in the future nor before admission")


class VerifyInput(BaseModel):
    qr_payload: Text = Field(description="The text of the certificate's QR code")


class VerifiedCertificate(Out):
    """What the certificate's QR code says (read once its signature is good)."""

    model_config = ConfigDict(populate_by_name=True)
    id: Optional[str]
    student_id: Optional[int]
    name: Optional[str]
    date_of_birth: Optional[str]
    school: Optional[str] = Field(description="The school's UDISE code")
    class_: Optional[str] = Field(alias="class", description="Grade and section, e.g. 5A")
    leaving_date: Optional[str]


class Verification(Out):
    valid: bool
    reason: Optional[Literal["malformed", "unknown-key", "bad-signature", "key-revoked", "unknown-certificate",
                             "certificate-revoked", "already-used"]] = Field(description="Why it is not valid")
    detail: Optional[str] = Field(description="What is wrong with a malformed payload")
    kid: Optional[str] = Field(description="The signing key the payload names")
    certificate: Optional[VerifiedCertificate] = Field(description="Once the signature is good")


class SigningKey(Out):
    """A certificate signing key's public half as a JWK (RFC 8037), with its organization and status."""

    kid: str
    kty: Literal["OKP"]
    crv: Literal["Ed25519"]
    alg: Literal["EdDSA"]
    use: Literal["sig"]
    x: str = Field(description="The public key, base64url")
    organization: str = Field(description="The organization's slug")
    status: Literal["active", "retired", "revoked"] = Field(
        description="retired: replaced, its certificates still verify; revoked: they no longer do")
    created_at: dt.datetime
    retired_at: Optional[dt.datetime]
    revoked_at: Optional[dt.datetime]


class SigningKeySet(Out):
    keys: list[SigningKey]


class Transfer(Out):
    """A transfer from another state, waiting for review or reviewed."""

    id: int
    student_id: int
    status: Literal[("pending", *records.REVIEW_DECISIONS)]  # type: ignore[valid-type]
    document: dict[str, Any] = Field(description="The other state's transfer certificate (OutOfStateDocument)")
    review_note: Optional[str]
    reviewed_at: Optional[dt.datetime]
    created_at: dt.datetime


class AuditEntry(Out):
    id: int
    action: str = Field(description="e.g. student.enrolled, slc.issued, slc_key.rotated")
    subject: str = Field(description="What it acted on, e.g. student:12, slc_key:<kid>")
    details: dict[str, Any]
    at: dt.datetime
    api_key_id: Optional[int] = Field(description="The API key that did it")
    api_key: Optional[str] = Field(description="That key's prefix, to recognise it")


class ReviewInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: Literal[records.REVIEW_DECISIONS]  # type: ignore[valid-type]
    note: Optional[EnrollmentText] = None  # type: ignore[valid-type]


# --- service -------------------------------------------------------------------------------------------------

class Status(Out):
    status: str


class ApiKey(Out):
    id: int
    organization: str
    role: str
    label: Optional[str]
    prefix: str = Field(description="The first characters of the key, to recognise it")
    created_at: dt.datetime
    revoked_at: Optional[dt.datetime]



# --- announcements to parents ----------------------------------------------------------------------------------

class QuietHours(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: str = Field(pattern=policy.CLOCK.pattern, description="Local time HH:MM", examples=["21:00"])
    end: str = Field(pattern=policy.CLOCK.pattern, description="Local time HH:MM", examples=["07:00"])


class SmsPolicyPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    time_zone: TimeZone = Field(None, description="IANA time zone of schools without their own")
    quiet_hours: Optional[QuietHours] = Field(None, description="No announcement goes out between start and end, in "
                                                                "the school's time zone (queued until end); null: none")
    daily_cap: Optional[int] = Field(None, ge=1, le=1000, description="Announcements per recipient per local day; null: no cap")
    # Left out: unchanged. Not nullable: these two always have a value.
    dlt_required: bool = Field(None, description="Templates need a DLT template id and sender id")
    sender_id: Optional[str] = Field(None, pattern=policy.SENDER_ID.pattern, description="Default sender id (header)")
    approval_threshold: int = Field(None, ge=0, le=policy.MAX_APPROVAL_THRESHOLD,
                                              description="Above this many messages an announcement waits for a "
                                                          "second admin's approval")


class SmsPolicy(Out):
    time_zone: str
    quiet_hours: Optional[QuietHours]
    daily_cap: Optional[int]
    dlt_required: bool
    sender_id: Optional[str]
    approval_threshold: int


TemplateBodies = dict[Annotated[str, Field(pattern=r"^[a-z]{2}$")],
                      Annotated[str, Field(min_length=1, max_length=sms_templates.MAX_BODY_LENGTH)]]


TemplatePlaceholder = Annotated[str, Field(pattern=sms_templates.NAME_PATTERN.pattern)]


class SmsTemplateInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=sms_templates.MAX_NAME_LENGTH)
    kind: Literal[sms_templates.KINDS]  # type: ignore[valid-type]
    bodies: TemplateBodies = Field(
        min_length=1, json_schema_extra={"additionalProperties": False}, description="Bodies by language code; placeholders in braces, as the kind provides: "
        + "; ".join(f"{kind}: " + ", ".join("{" + p + "}" for p in names)
                    for kind, names in sms_templates.PLACEHOLDERS.items()) + " and the names it declares")
    placeholders: list[TemplatePlaceholder] = Field(
        [], max_length=sms_templates.MAX_DECLARED, description="A custom template's own placeholder names")
    dlt_template_id: Optional[str] = Field(None, pattern=sms_templates.DLT_TEMPLATE_ID.pattern,
                                           description="The regulator's (DLT) template id; required by policy")
    sender_id: Optional[str] = Field(None, pattern=policy.SENDER_ID.pattern, description="Registered sender id")


class SmsTemplatePatch(SmsTemplateInput):
    """Members sent replace the stored ones; `name`, `kind`, `bodies` and `placeholders` are never null."""

    name: str = Field(None, min_length=1, max_length=sms_templates.MAX_NAME_LENGTH)  # type: ignore[assignment]
    kind: Literal[sms_templates.KINDS] = None  # type: ignore[valid-type, assignment]
    bodies: TemplateBodies = Field(None, min_length=1,  # type: ignore[assignment]
                                   json_schema_extra={"additionalProperties": False})
    placeholders: list[TemplatePlaceholder] = Field(  # type: ignore[assignment]
        None, max_length=sms_templates.MAX_DECLARED, description="A custom template's own placeholder names")


class SmsTemplate(Out):
    id: int
    name: str
    kind: str
    bodies: dict[str, str]
    placeholders: list[str]
    dlt_template_id: Optional[str]
    sender_id: Optional[str]
    created_at: dt.datetime
    updated_at: dt.datetime


AudienceIds = Annotated[list[Id], Field(min_length=1, max_length=announcements_service.MAX_IDS)]
AreaName = text(200)


class ClassAudience(BaseModel):
    model_config = ConfigDict(extra="forbid")
    class_ids: AudienceIds = Field(json_schema_extra={"x-checked-against": "the organization's classes"})


class StudentAudience(BaseModel):
    model_config = ConfigDict(extra="forbid")
    student_ids: AudienceIds = Field(json_schema_extra={"x-checked-against": "the organization's enrolled students"})


class SchoolAudience(BaseModel):
    model_config = ConfigDict(extra="forbid")
    school: str = Field(pattern=roster.UDISE_PATTERN.pattern, description="The school's UDISE code")


class BlockAudience(BaseModel):
    model_config = ConfigDict(extra="forbid")
    block: AreaName  # type: ignore[valid-type]
    district: AreaName = None  # type: ignore[valid-type]


class DistrictAudience(BaseModel):
    model_config = ConfigDict(extra="forbid")
    district: AreaName  # type: ignore[valid-type]


class AnnouncementInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    template_id: Id = Field(json_schema_extra={"x-checked-against": "the organization's SMS templates"})
    values: dict[str, Any] = Field({}, description="The template's placeholders the roster does not fill "
                                                   "({date}, {subject}, declared names); `assessment_id` for a result",
                                   json_schema_extra={"x-checked-against": "the template's placeholders"})
    audience: Union[ClassAudience, StudentAudience, SchoolAudience, BlockAudience, DistrictAudience] = Field(
        description="Whom to message: classes, students, a school, a block (of a district) or a district")
    send_at: Optional[Timestamp] = Field(None, description="When to send (not in the past); now when left out")


class AnnouncementProgress(Out):
    resolved: int = Field(description="Recipients resolved when sending started: to message and skipped")
    queued: int
    sent: int
    delivered: int = Field(description="Reported delivered by the provider (none of the configured ones reports it)")
    failed: int
    unknown: int = Field(description="Handed to the provider with no answer; an operator decides (docs/sms.md)")
    skipped: int = Field(description="Opted out, no guardian phone, or (results) no marks")
    cancelled: int
    percent: float


class Announcement(Out):
    id: int
    template_id: int
    kind: str
    status: Literal["awaiting_approval", "scheduled", "sending", "completed", "cancelled"]
    send_at: dt.datetime
    audience: dict[str, Any]
    values: dict[str, Any]
    bodies: dict[str, str] = Field(description="The text that goes out, values filled in, per language")
    recipients: int = Field(description="Recipients the audience resolved to when the announcement was made")
    progress: AnnouncementProgress
    created_by: Optional[int] = Field(description="The API key that made it")
    created_at: dt.datetime
    approved_by: Optional[int]
    approved_at: Optional[dt.datetime]
    cancelled_at: Optional[dt.datetime]
    fanned_out_at: Optional[dt.datetime]


class AnnouncementRecipient(Out):
    recipient: str = Field(description="The guardian phone (and child, for results), or student:<id> without a phone")
    phone: Optional[str]
    student_ids: list[int]
    language: Optional[str]
    status: Literal[announcements_service.RECIPIENT_STATUSES]  # type: ignore[valid-type]
    reason: Optional[str] = Field(description="Why it was skipped (opted_out, no_phone, no_result) or the last error")
    message_id: Optional[int]
    attempts: int
