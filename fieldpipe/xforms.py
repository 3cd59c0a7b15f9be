"""XForms: XLSForm conversion with pyxform, an XForm's questions in fieldpipe's model, instances as answers.

How an XForm maps onto the question model (docs/openrosa.md has the table):
- A question is keyed by its element path below the instance root: groups are flattened into the key
  ("hospital/name"), the names export tools (formhub, Kobo, Ona) use for columns too.
- A repeat is a question of type `repeat`; its answer is a list of objects keyed the same way, relative
  to the repeat element. Repeats nest.
- `calculate` (a bind with a calculation and no control) and `note` (a read-only control) are not
  questions: their values are recomputed by the device and never stored as answers.
- The `meta` block is the envelope: `instanceID` (the submission id), `deprecatedID` (an edit of that
  submission), `instanceName`; nothing in it is an answer.
- Every value in an instance is a string; `instance_answers` types it by its question before the same
  checks a JSON submission gets.
"""

from __future__ import annotations

import functools
import io
import math
import re
import uuid
from dataclasses import dataclass
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from fieldpipe.answers import TEXT_TYPES
from fieldpipe.problems import FieldError, Problem, invalid

XF = "http://www.w3.org/2002/xforms"
XHTML = "http://www.w3.org/1999/xhtml"
JR = "http://openrosa.org/javarosa"
ORX = "http://openrosa.org/xforms"
# fieldpipe's own bind attributes: XLSForm writes them from a `bind::fieldpipe:mask` column when the settings
# sheet declares `namespaces` as fieldpipe="https://fieldpipe.dev/xforms" (docs/openrosa.md).
FIELDPIPE_NS = "https://fieldpipe.dev/xforms"
NS = {"xf": XF, "h": XHTML, "jr": JR}
XLSFORM_SUFFIXES = (".xlsx", ".xlsm", ".xls")
# Instance ids that are not `uuid:<uuid>` (older clients, Central's test data) still get a stable
# submission id: the same text always maps to the same UUID, so retries stay duplicates.
INSTANCE_ID_NAMESPACE = uuid.UUID("6f1e0c1e-6b1a-4d53-9d35-2a9f3b7c5e10")

BIND_TYPES = {
    "string": "text", "int": "integer", "integer": "integer", "long": "integer", "short": "integer",
    "decimal": "decimal", "double": "decimal", "float": "decimal", "date": "date", "dateTime": "datetime",
    "time": "time", "geopoint": "geopoint", "geotrace": "geotrace", "geoshape": "geoshape",
    "boolean": "boolean", "barcode": "text", "binary": "file", "select1": "single_choice",
    "select": "multi_choice",
}
MEDIA_TYPES = {"image": "image", "audio": "audio", "video": "video"}
CONTROL_TAGS = {"input", "select1", "select", "upload", "trigger", "range", "rank", "textarea", "secret"}
QUESTION, GROUP, REPEAT, IGNORED = "question", "group", "repeat", "ignored"
UNBOUND_PREFIX = re.compile(rb"<(/?)([A-Za-z_][\w.-]*):")


def local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_xml(data: bytes) -> Element:
    """Parse untrusted XML (no entities, no DTDs). A prefix used without a declaration, as some clients send
    `orx:meta`, is declared on the root and parsed again, as ODK Central's lenient parser does."""
    try:
        return SafeET.fromstring(data)
    except DefusedXmlException:
        raise Problem("bad-request", "XML with a DTD or entities is not accepted") from None
    except ParseError as err:
        if "unbound prefix" not in str(err):
            raise Problem("bad-request", f"the XML is not well formed: {err}") from None
    declared = set(re.findall(rb"xmlns:([A-Za-z_][\w.-]*)\s*=", data))
    prefixes = {m.group(2) for m in UNBOUND_PREFIX.finditer(data)} - declared - {b"xml", b"xmlns"}
    declarations = b"".join(b' xmlns:%s="urn:fieldpipe:undeclared:%s"' % (p, p) for p in sorted(prefixes))
    patched = re.sub(rb"(<(?!\?|!)[^\s>/]+)", lambda m: m.group(1) + declarations, data, count=1)
    try:
        return SafeET.fromstring(patched)
    except ParseError as err:
        raise Problem("bad-request", f"the XML is not well formed: {err}") from None


# --- forms ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class XForm:
    form_id: str
    version: str | None
    title: str
    questions: list[dict]
    schema: dict  # by element name, for reading instances (see _Reader.questions)
    xml: bytes


def xlsform_to_xform(data: bytes, filename: str) -> bytes:
    """Convert an XLSForm; pyxform's own message is the 422's detail when it rejects the form."""
    from pyxform.builder import create_survey_element_from_dict
    from pyxform.errors import PyXFormError
    from pyxform.xls2json import workbook_to_json
    from pyxform.xls2json_backends import get_xlsform

    stem, _, suffix = filename.replace("\\", "/").rsplit("/", 1)[-1].rpartition(".")
    try:
        # pyxform's convert() names a form without settings/form_id after its file only when given a path
        workbook = get_xlsform(xlsform=io.BytesIO(data), file_type="." + suffix.lower())
        survey = create_survey_element_from_dict(workbook_to_json(
            workbook_dict=workbook, form_name="data", fallback_form_name=re.sub(r"[^\w.-]", "_", stem) or None,
            warnings=[]))
        return survey.to_xml(validate=False, warnings=[]).encode()
    except (PyXFormError, ValueError, KeyError) as err:
        raise invalid([FieldError("file", "xlsform", str(err))], "pyxform could not convert this XLSForm") from None
    except Exception as err:  # xlrd/openpyxl raise their own types for a file that is not a spreadsheet
        raise invalid([FieldError("file", "xlsform", f"not a readable {suffix} file: {err}")],
                      "pyxform could not read this XLSForm") from None


class _Reader:
    """One pass over an XForm: binds, body controls, choice lists and labels, then the instance tree."""

    def __init__(self, root: Element):
        head = root.find("h:head", NS)
        model = head.find("xf:model", NS) if head is not None else None
        if model is None:
            raise _form_error("the XForm has no h:head/model")
        instances = model.findall("xf:instance", NS)
        primary = next((i for i in instances if i.get("id") is None), None)
        if primary is None or len(primary) == 0:
            raise _form_error("the XForm has no primary instance")
        self.data = primary[0]
        self.root_path = "/" + local_name(self.data.tag)
        self.secondary = {i.get("id"): i for i in instances if i.get("id") is not None}
        self.title = (head.findtext("h:title", namespaces=NS) or "").strip()
        self.binds = {b.get("nodeset"): b for b in model.iter(f"{{{XF}}}bind") if b.get("nodeset")}
        self.itext = self._itext(model)
        self.controls: dict[str, Element] = {}
        self.repeats: dict[str, Element] = {}
        self.groups: dict[str, Element] = {}
        body = root.find("h:body", NS)
        if body is not None:
            self._scan_body(body, self.root_path)

    def _itext(self, model: Element) -> dict[str, str]:
        translations = model.findall("xf:itext/xf:translation", NS)
        chosen = next((t for t in translations if t.get("default")), translations[0] if translations else None)
        texts = {}
        for text in chosen.findall("xf:text", NS) if chosen is not None else []:
            values = text.findall("xf:value", NS)
            plain = next((v for v in values if v.get("form") is None), values[0] if values else None)
            if plain is not None:
                texts[text.get("id")] = "".join(plain.itertext()).strip()
        return texts

    def _scan_body(self, element: Element, context: str) -> None:
        for child in element:
            tag = local_name(child.tag)
            ref = child.get("ref") or child.get("nodeset")
            path = self._absolute(ref, context) if ref else context
            if tag == "repeat":
                self.repeats[path] = child
            elif tag == "group":
                self.groups[path] = child
            elif tag in CONTROL_TAGS and ref:
                self.controls[path] = child
                continue
            if tag in ("group", "repeat"):
                self._scan_body(child, path)

    @staticmethod
    def _absolute(ref: str, context: str) -> str:
        return ref if ref.startswith("/") else f"{context}/{ref}"

    def label(self, element: Element | None, fallback: str) -> str:
        label = element.find("xf:label", NS) if element is not None else None
        if label is None:
            return fallback
        ref = label.get("ref", "")
        if ref.startswith("jr:itext("):
            return self.itext.get(ref[len("jr:itext("):-1].strip("'\""), fallback) or fallback
        return " ".join("".join(label.itertext()).split()) or fallback

    def choices(self, control: Element) -> list[dict] | None:
        """The control's choices, or None when they live outside the form (external CSV, search())."""
        items = control.findall("xf:item", NS)
        if items:
            return [{"value": (i.findtext("xf:value", namespaces=NS) or "").strip(), "label": self.label(i, "")}
                    for i in items]
        itemset = control.find("xf:itemset", NS)
        if itemset is None:
            return None
        match = re.match(r"instance\(\s*['\"]([^'\"]+)['\"]\s*\)((?:/[\w.-]+)+)", itemset.get("nodeset", ""))
        source = self.secondary.get(match.group(1)) if match else None
        if source is None or len(source) == 0:
            return None
        value_ref = itemset.find("xf:value", NS).get("ref", "name")
        label_el = itemset.find("xf:label", NS)
        label_ref = label_el.get("ref", "label") if label_el is not None else "label"
        item_name = match.group(2).rsplit("/", 1)[-1]
        choices = []
        for item in source[0].iter():
            if local_name(item.tag) != item_name:
                continue
            values = {local_name(c.tag): "".join(c.itertext()).strip() for c in item}
            value = values.get(value_ref, "")
            if label_ref.startswith("jr:itext("):
                label = self.itext.get(values.get(label_ref[len("jr:itext("):-1].strip("'\""), ""), value)
            else:
                label = values.get(label_ref, value)
            choices.append({"value": value, "label": label or value})
        return choices

    def questions(self, element: Element, path: str, scope: str, schema: dict) -> list[dict]:
        """The questions below `element` (at `path`), keys relative to `scope` (the root or a repeat).

        `schema` is filled alongside, by element name, for reading instances: a question, a group's own
        schema, a repeat's {"_repeat": question, "_schema": ...}, or None for a calculate or a note."""
        questions: list[dict] = []
        for child in element:
            name = local_name(child.tag)
            child_path = f"{path}/{name}"
            if name in schema or (path == self.root_path and name == "meta"):
                continue  # a repeat's template and its first instance; the envelope
            key = child_path[len(scope) + 1:]
            if child_path in self.repeats or child.get(f"{{{JR}}}template") is not None:
                inner_schema: dict = {}
                inner = self.questions(child, child_path, child_path, inner_schema)
                question = {"key": key, "label": self.label(self._repeat_label(child_path), name), "type": "repeat",
                            "required": False, "questions": inner}
                schema[name] = (REPEAT, question, inner_schema)
                if inner:
                    questions.append(question)
            elif len(child):
                inner_schema = {}
                schema[name] = (GROUP, inner_schema)
                questions += self.questions(child, child_path, scope, inner_schema)
            else:
                question = self._leaf(child_path, key)
                schema[name] = (IGNORED,) if question is None else (QUESTION, question)
                if question is not None:
                    questions.append(question)
        return questions

    def _repeat_label(self, path: str) -> Element | None:
        """A repeat's label sits on the group around it (pyxform) or on the repeat itself."""
        repeat = self.repeats.get(path)
        return repeat if repeat is not None and repeat.find("xf:label", NS) is not None else self.groups.get(path)

    def _leaf(self, path: str, key: str) -> dict | None:
        bind = self.binds.get(path)
        bind = bind if bind is not None else Element("bind")
        control = self.controls.get(path)
        if control is None and bind.get("calculate") is not None:
            return None  # calculate
        tag = local_name(control.tag) if control is not None else None
        if tag in ("input", "textarea") and bind.get("readonly", "").replace(" ", "") == "true()":
            return None  # note
        qtype = BIND_TYPES.get(local_name(bind.get("type", "string")).split(":")[-1], "text")
        choices = None
        if tag in ("select1", "select"):
            choices = self.choices(control)
            qtype = ("single_choice" if tag == "select1" else "multi_choice") if choices else "text"
        elif tag == "upload":
            qtype = MEDIA_TYPES.get(control.get("mediatype", "").split("/")[0], "file")
        elif qtype in ("single_choice", "multi_choice"):
            qtype = "text"  # a select bind type without a control to read the choices from
        question = {"key": key, "label": self.label(control, key.rsplit("/", 1)[-1]), "type": qtype,
                    "required": bind.get("required", "").replace(" ", "") == "true()"}
        mask = bind.get(f"{{{FIELDPIPE_NS}}}mask", "").strip()
        if mask:
            # `true` means the type's default mask; anything else is checked with every form's questions.
            question["mask"] = True if mask in ("true", "true()", "yes") else mask
        if choices:
            unique = {c["value"]: c for c in choices if c["value"]}
            question["choices"] = list(unique.values())
        hint = control.find("xf:hint", NS) if control is not None else None
        if hint is not None and "".join(hint.itertext()).strip():
            question["hint"] = " ".join("".join(hint.itertext()).split())
        return question


def _form_error(message: str) -> Problem:
    return invalid([FieldError("file", "xform", message)], "the XForm cannot be used")


def parse_xform(xml: bytes) -> XForm:
    """The XForm's identity and questions; 422 naming the problem when it is not a usable XForm."""
    try:
        root = SafeET.fromstring(xml)
    except (ParseError, DefusedXmlException) as err:
        raise _form_error(f"the XForm is not well-formed XML: {err}") from None
    return _from_root(xml, root)


@functools.lru_cache(maxsize=256)
def cached_xform(xml: bytes) -> XForm:
    """Stored XForms never change, so a version's parse is kept for every submission to it."""
    return parse_xform(xml)


def _from_root(xml: bytes, root: Element) -> XForm:
    reader = _Reader(root)
    form_id = reader.data.get("id")
    if not form_id:
        raise _form_error("the primary instance's root has no id attribute")
    schema: dict = {}
    questions = reader.questions(reader.data, reader.root_path, reader.root_path, schema)
    if not questions:
        raise _form_error("the XForm has no questions that store answers")
    return XForm(form_id, _version(reader.data), reader.title or form_id, questions, schema, xml)


def _version(root: Element) -> str | None:
    """The form version on an instance root: `version`, or `orx:version` as older forms write it."""
    return root.get("version") or root.get(f"{{{ORX}}}version") or root.get("{urn:fieldpipe:undeclared:orx}version")


def with_version(xml: bytes, version: str) -> bytes:
    """Put a version on the primary instance root when the form has none, so devices send it back."""
    root_tag = re.search(rb"<instance>\s*<([^\s>/]+)([^>]*?)(/?)>", xml)
    if root_tag is None or re.search(rb"[\s:]version\s*=", root_tag.group(2)):
        return xml
    start, end = root_tag.span(2)
    return xml[:end] + b' version="%s"' % version.encode() + xml[end:]


# --- instances -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instance:
    """A submitted instance: which form and version it claims, its envelope and its data element."""

    form_id: str
    version: str | None
    instance_id: str
    deprecated_id: str | None
    instance_name: str | None
    element: Element

    @property
    def submission_id(self) -> uuid.UUID:
        return submission_uuid(self.instance_id)


def submission_uuid(instance_id: str) -> uuid.UUID:
    text = instance_id.strip()
    try:
        return uuid.UUID(text[5:] if text.lower().startswith("uuid:") else text)
    except ValueError:
        return uuid.uuid5(INSTANCE_ID_NAMESPACE, text)


def read_instance(data: bytes) -> Instance:
    root = parse_xml(data)
    form_id = root.get("id")
    if not form_id:
        raise Problem("bad-request", "the instance's root element has no id attribute naming its form")
    if root.get("encrypted", "").lower() == "yes":
        raise invalid([FieldError("", "encrypted", "encrypted submissions are not supported: fieldpipe holds no "
                                                  "form private keys; publish the form without encryption")])
    meta = next((c for c in root if local_name(c.tag) == "meta"), None)
    envelope = {local_name(c.tag): (c.text or "").strip() for c in meta} if meta is not None else {}
    if not envelope.get("instanceID"):
        raise invalid([FieldError("meta/instanceID", "required", "the instance has no meta/instanceID")])
    return Instance(form_id, _version(root), envelope["instanceID"], envelope.get("deprecatedID") or None,
                    envelope.get("instanceName") or None, root)


def _number(text: str, integer: bool) -> int | float:
    if integer:
        if not re.fullmatch(r"[+-]?\d+", text):
            raise ValueError("must be a whole number")
        return int(text)
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def _point(text: str) -> dict:
    parts = text.split()
    if not 2 <= len(parts) <= 4:
        raise ValueError("a location is 'latitude longitude [altitude [accuracy]]'")
    numbers = [float(p) for p in parts] + [None] * (4 - len(parts))
    return dict(zip(("latitude", "longitude", "altitude", "accuracy"), numbers))


def _geo_list(text: str) -> list[dict]:
    return [_point(p) for p in text.split(";") if p.strip()]


def _boolean(text: str) -> bool:
    if text.lower() in ("true", "1"):
        return True
    if text.lower() in ("false", "0"):
        return False
    raise ValueError("must be true or false")


CONVERTERS = {
    "integer": lambda t: _number(t, True),
    "decimal": lambda t: _number(t, False),
    "multi_choice": str.split,
    "geopoint": _point,
    "geotrace": _geo_list,
    "geoshape": _geo_list,
    "boolean": _boolean,
}


def instance_answers(instance: Instance, xform: XForm) -> tuple[dict, list[FieldError]]:
    """The instance's values typed by their questions (strings become numbers, lists, points)."""
    answers: dict = {}
    errors: list[FieldError] = []
    _read(instance.element, xform.schema, answers, "", errors, top=True)
    return answers, errors


def _read(element: Element, schema: dict, answers: dict, where: str, errors: list[FieldError],
          top: bool = False) -> None:
    for child in element:
        name = local_name(child.tag)
        if top and name == "meta":
            continue
        field = f"{where}{name}"
        if name not in schema:
            errors.append(FieldError(f"answers.{field}", "unknown_question", "is not a question of this form version"))
            continue
        kind, *node = schema[name]
        if kind == IGNORED:
            continue  # a calculate or a note
        if kind == REPEAT:
            question, inner = node
            items = answers.setdefault(question["key"], [])
            item: dict = {}
            _read(child, inner, item, f"{field}[{len(items)}]/", errors)
            items.append(item)
            continue
        if kind == GROUP:
            _read(child, node[0], answers, f"{field}/", errors)
            continue
        question = node[0]
        if len(child):
            errors.append(FieldError(f"answers.{field}", "type", "holds elements where a value was expected"))
            continue
        text = child.text or ""
        if question["type"] not in TEXT_TYPES:
            text = text.strip()
        if text == "":
            continue
        try:
            answers[question["key"]] = CONVERTERS.get(question["type"], str)(text)
        except ValueError as err:
            errors.append(FieldError(f"answers.{field}", "type", f"does not fit a {question['type']} question ({err})"))
