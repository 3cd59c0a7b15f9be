"""OpenRosa end to end over real HTTP: the real fixtures' forms load, their submissions land as Collect posts them."""

from __future__ import annotations

import hashlib
import io
import json
import xml.etree.ElementTree as ET

import pytest
import requests

from tests.fakes.openrosa_client import CollectClient
from tests.helpers import auth
from tests.openrosa_support import (
    CENTRAL, JPEG, TRANSPORTATION, TUTORIAL, WIDGETS, new_instance_id, tutorial_instance, upload_form,
)

RESPONSE_NS = "{http://openrosa.org/http/response}"


def message(answer: requests.Response) -> tuple[str, str]:
    assert answer.headers["Content-Type"].startswith("text/xml"), answer.text
    assert answer.headers["X-OpenRosa-Version"] == "1.0"
    element = ET.fromstring(answer.content).find(f"{RESPONSE_NS}message")
    return element.get("nature"), element.text


def count(conn, table="responses") -> int:
    return conn.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"]


@pytest.fixture
def tutorial(client, admin_key):
    answer = upload_form(client, admin_key, TUTORIAL / "tutorial_w_repeats.xls")
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()


@pytest.fixture
def collect(live_api, collector_key, object_store):
    return CollectClient(f"{live_api}/openrosa/acme", username="tablet-3", password=collector_key)


def test_xlsform_becomes_a_form_with_typed_questions(tutorial):
    assert tutorial["slug"] == "tutorial-w-repeats" and tutorial["xform_id"] == "tutorial_w_repeats"
    types = {q["key"]: q["type"] for q in tutorial["questions"]}
    assert types == {"name": "text", "age": "integer", "picture": "image", "has_children": "single_choice",
                     "children": "repeat", "gps": "geopoint", "web_browsers": "multi_choice"}
    children = next(q for q in tutorial["questions"] if q["key"] == "children")
    assert [(q["key"], q["type"]) for q in children["questions"]] == [("childs_name", "text"), ("childs_age", "integer")]
    browsers = next(q for q in tutorial["questions"] if q["key"] == "web_browsers")
    assert [c["value"] for c in browsers["choices"]] == ["firefox", "chrome", "ie", "safari"]


def test_widgets_and_transportation_map_groups_notes_and_calculates(client, admin_key):
    widgets = upload_form(client, admin_key, WIDGETS).get_json()
    types = {q["key"]: q["type"] for q in widgets["questions"]}
    assert types["my_image"] == "image" and types["my_audio"] == "audio" and types["my_video"] == "video"
    assert types["my_geopoint"] == "geopoint" and types["dateTime"] == "datetime" and types["my_time"] == "time"
    assert not any("note" in key for key in types), "notes are not questions"
    transport = upload_form(client, admin_key, TRANSPORTATION / "transportation.xls").get_json()
    keys = [q["key"] for q in transport["questions"]]
    assert "transport/loop_over_transport_types_frequency/ambulance/frequency_to_referral_facility" in keys


def test_rejected_xlsform_is_422_with_pyxform_message(client, admin_key, conn, tmp_path):
    import openpyxl

    book = openpyxl.Workbook()
    book.active.title = "survey"
    book.active.append(["type", "name", "label"])
    book.active.append(["select_one missing_list", "q1", "Pick"])
    path = tmp_path / "broken.xlsx"
    book.save(path)
    answer = upload_form(client, admin_key, path)
    assert answer.status_code == 422
    assert "choices sheet" in answer.get_json()["errors"][0]["message"], "pyxform's own words"
    assert count(conn, "forms") == 0


def masked_xlsform(path, visitor_mask: str):
    """An XLSForm whose personal questions carry fieldpipe's mask as a namespaced bind column."""
    import openpyxl

    book = openpyxl.Workbook()
    survey = book.active
    survey.title = "survey"
    for row in (["type", "name", "label", "bind::fieldpipe:mask"], ["text", "visitor", "Your name", visitor_mask],
                ["text", "contact", "Phone to call back", "true"], ["integer", "age", "Age", None]):
        survey.append(row)
    settings = book.create_sheet("settings")
    settings.append(["form_title", "form_id", "version", "namespaces"])
    settings.append(["Masked", "masked_visit", "1", 'fieldpipe="https://fieldpipe.dev/xforms"'])
    book.save(path)
    return path


def test_an_xlsform_marks_personal_questions_with_a_fieldpipe_mask_column(client, admin_key, conn, tmp_path):
    answer = upload_form(client, admin_key, masked_xlsform(tmp_path / "masked.xlsx", "hash"))
    assert answer.status_code == 201, answer.get_json()
    masks = {q["key"]: q.get("mask") for q in answer.get_json()["questions"]}
    assert masks == {"visitor": "hash", "contact": True, "age": None}
    assert conn.execute("SELECT to_regclass('reporting.\"acme__masked-visit\"') AS view").fetchone()["view"]


@pytest.mark.parametrize("mask", ["partial", "shout"])
def test_an_xlsform_mask_that_does_not_fit_is_refused_and_nothing_stored(client, admin_key, conn, tmp_path, mask):
    # partial is for phone and email types only; an XLSForm text question is neither
    answer = upload_form(client, admin_key, masked_xlsform(tmp_path / "masked.xlsx", mask))
    assert answer.status_code == 422 and answer.mimetype == "application/problem+json"
    assert [e["field"] for e in answer.get_json()["errors"]] == ["questions[0].mask"]
    assert count(conn, "forms") == 0


def test_collector_key_cannot_upload_forms_and_json_forms_still_work(client, collector_key, make_form):
    assert upload_form(client, collector_key, TUTORIAL / "tutorial_w_repeats.xls").status_code == 403
    assert make_form()["slug"] == "household-survey"


def test_form_list_and_download_as_collect_sees_them(tutorial, collect, live_api, other_org_admin_key):
    forms = collect.form_list()
    assert [f["formID"] for f in forms] == ["tutorial_w_repeats"]
    xform = collect.download(forms[0]["downloadUrl"])
    assert forms[0]["hash"] == "md5:" + hashlib.md5(xform).hexdigest()
    assert b'id="tutorial_w_repeats"' in xform and b'version="1"' in xform
    assert collect.form_list("nope") == []
    outsider = CollectClient(f"{live_api}/openrosa/acme", "x", other_org_admin_key)
    assert outsider.head().status_code == 401
    with pytest.raises(requests.HTTPError):
        outsider.form_list()


def test_head_negotiates_like_collect_expects(collect, live_api):
    anonymous = requests.head(f"{live_api}/openrosa/acme/submission")
    assert anonymous.status_code == 401 and "Basic" in anonymous.headers["WWW-Authenticate"]
    head = collect.head()
    assert head.status_code == 204
    assert head.headers["X-OpenRosa-Version"] == "1.0"
    assert int(head.headers["X-OpenRosa-Accept-Content-Length"]) > 0


def test_real_submission_lands_typed_and_a_retry_is_a_duplicate(tutorial, collect, client, collector_key, conn):
    xml = (TUTORIAL / "tutorial_w_repeats.xml").read_bytes()  # root <tutorial_w_repeats>, the form's is <data>
    [answer] = collect.submit(xml)
    assert answer.status_code == 201, answer.text
    assert message(answer)[0] == "submit_success"
    stored = client.get("/api/v1/forms/tutorial-w-repeats/responses/b31c6ac2-b8ca-4180-914f-c844fa10ed3b",
                        headers=auth(collector_key)).get_json()
    assert stored["answers"] == {
        "name": "Bob", "age": 25, "has_children": "1",
        "children": [{"childs_name": "Tom", "childs_age": 12}, {"childs_name": "Dick", "childs_age": 5}],
        "gps": {"latitude": -1.2625621, "longitude": 36.7921711, "altitude": 0.0, "accuracy": 20.0},
    }
    assert stored["collector"]["id"] == "tablet-3"
    [again] = collect.submit(xml)
    assert again.status_code == 201 and "already received" in message(again)[1]
    assert count(conn) == 1 and count(conn, "response_revisions") == 1


def test_same_instance_id_with_other_content_is_a_conflict(tutorial, collect, conn):
    collect.submit(tutorial_instance())
    [answer] = collect.submit(tutorial_instance(name="Robert"))
    assert answer.status_code == 409 and message(answer)[0] == "submission-conflict"
    assert count(conn, "response_revisions") == 1


def test_deprecated_id_makes_an_edit_a_new_revision(tutorial, collect, client, collector_key, conn):
    first = "uuid:b31c6ac2-b8ca-4180-914f-c844fa10ed3b"
    collect.submit(tutorial_instance())
    second = new_instance_id()
    edit = tutorial_instance(name="Robert").replace(
        b"<instanceID>" + first.encode() + b"</instanceID>",
        f"<instanceID>{second}</instanceID><deprecatedID>{first}</deprecatedID>".encode())
    [answer] = collect.submit(edit)
    assert answer.status_code == 201 and message(answer)[1].startswith("Edit received")
    [retry] = collect.submit(edit)
    assert retry.status_code == 201
    revisions = client.get(f"/api/v1/forms/tutorial-w-repeats/responses/{first[5:]}/revisions",
                           headers=auth(collector_key)).get_json()["items"]
    assert [r["answers"]["name"] for r in revisions] == ["Bob", "Robert"]
    assert count(conn) == 1
    third = edit.replace(second.encode(), new_instance_id().encode()).replace(first.encode(), second.encode())
    third = third.replace(b"<name>Robert</name>", b"<name>Rob</name>")
    assert collect.submit(third)[0].status_code == 201, "an edit of an edit finds the response"
    assert count(conn, "response_revisions") == 3


def test_attachment_split_across_posts_is_completed_and_served_back(tutorial, collect, client, collector_key,
                                                                     other_org_admin_key, conn, object_store):
    instance_id = new_instance_id()
    xml = tutorial_instance(instanceID=instance_id, picture="1335783522563.jpg")
    [first] = collect.submit(xml)  # the XML alone: the picture is still on the phone
    assert first.status_code == 201 and "Waiting for 1 file" in message(first)[1]
    path = f"/api/v1/forms/tutorial-w-repeats/responses/{instance_id[5:]}/attachments"
    assert client.get(path, headers=auth(collector_key)).get_json()["items"][0]["received"] is False
    photo = JPEG.read_bytes()
    [second] = collect.submit(xml, {"1335783522563.jpg": photo})
    assert second.status_code == 201 and "Waiting" not in message(second)[1]
    assert count(conn) == 1 and count(conn, "response_revisions") == 1
    [listed] = client.get(path, headers=auth(collector_key)).get_json()["items"]
    assert listed["received"] and listed["size"] == len(photo) and listed["content_type"] == "image/jpeg"
    served = client.get(f"{path}/1335783522563.jpg", headers=auth(collector_key))
    assert served.status_code == 200 and served.data == photo
    assert client.get(f"{path}/1335783522563.jpg").status_code == 401
    assert client.get(f"{path}/1335783522563.jpg", headers=auth(other_org_admin_key)).status_code == 404
    keys = [o.key for o in object_store.list("attachments/")]
    assert len(keys) == 1 and "1335783522563" not in keys[0], "the device's name never reaches the key"


def test_collect_splits_two_files_over_two_posts(client, admin_key, live_api, collector_key, object_store, conn):
    upload_form(client, admin_key, WIDGETS)
    collect = CollectClient(f"{live_api}/openrosa/acme", "tablet", collector_key, split_at=2000)
    xml = (f'<data id="widgets"><my_image>a.jpg</my_image><my_audio>b.mp3</my_audio>'
           f"<meta><instanceID>{new_instance_id()}</instanceID></meta></data>").encode()
    answers = collect.submit(xml, {"a.jpg": b"\xff\xd8" + b"1" * 1500, "b.mp3": b"ID3" + b"2" * 1500})
    assert [a.status_code for a in answers] == [201, 201]
    rows = conn.execute("SELECT name, size FROM attachments ORDER BY name").fetchall()
    assert [(r["name"], r["size"]) for r in rows] == [("a.jpg", 1502), ("b.mp3", 1503)]
    assert count(conn) == 1


@pytest.mark.parametrize("form,instance", [
    ("simple", "one"), ("simple", "two"), ("withrepeat", "two"), ("doubleRepeat", "double"),
    ("groupRepeat", "one"), ("nestedGroup", "one"), ("selectMultiple", "three"), ("binaryType", "both"),
    ("simpleEntity", "one"),
])
def test_central_backend_forms_and_instances_land(client, admin_key, collect, conn, form, instance):
    """ODK Central's own test data, undeclared `orx:` prefixes and version attributes included."""
    upload = upload_form(client, admin_key, CENTRAL / "forms" / f"{form}.xml")
    assert upload.status_code == 201, upload.get_json()
    [answer] = collect.submit((CENTRAL / "instances" / form / f"{instance}.xml").read_bytes())
    assert answer.status_code == 201, answer.text
    assert count(conn) == 1


def test_nested_repeats_and_groups_keep_their_shape(client, admin_key, collect, collector_key):
    upload_form(client, admin_key, CENTRAL / "forms" / "doubleRepeat.xml")
    collect.submit((CENTRAL / "instances" / "doubleRepeat" / "double.xml").read_bytes())
    [item] = client.get("/api/v1/forms/doublerepeat/responses", headers=auth(collector_key)).get_json()["items"]
    children = item["answers"]["children/child"]
    assert [c["name"] for c in children] == ["Alice", "Bob", "Chelsea"]
    assert [t["name"] for t in children[1]["toys/toy"]][:2] == ["Twilight Sparkle", "Pinkie Pie"]


def _refused(collect, conn, xml: bytes, files=None) -> tuple[int, str, str]:
    [answer] = collect.submit(xml, files)
    nature, text = message(answer)
    assert count(conn) == 0 and count(conn, "attachments") == 0, "a refused post stores nothing"
    return answer.status_code, nature, text


def test_bad_submissions_get_the_envelope_and_store_nothing(tutorial, collect, conn, object_store):
    assert _refused(collect, conn, b"<tutorial_w_repeats id='tutorial_w_repeats'><name>")[:2] == (400, "bad-request")
    assert _refused(collect, conn, tutorial_instance().replace(b'id="tutorial_w_repeats"', b'id="other"'))[0] == 404
    assert _refused(collect, conn, tutorial_instance().replace(b"<tutorial_w_repeats ", b'<tutorial_w_repeats version="9" '))[0] == 404
    no_id = tutorial_instance().replace(b"uuid:b31c6ac2-b8ca-4180-914f-c844fa10ed3b", b"")
    assert _refused(collect, conn, no_id)[:2] == (422, "validation-failed")
    status, _, text = _refused(collect, conn, tutorial_instance(age="twenty"))
    assert status == 422 and "answers.age" in text
    status, _, text = _refused(collect, conn, tutorial_instance(has_children="7"))
    assert status == 422 and "has_children" in text
    status, _, text = _refused(collect, conn, tutorial_instance(gps="-1.26 abc"))
    assert status == 422 and "gps" in text
    status, _, text = _refused(collect, conn, tutorial_instance().replace(b"<age>", b"<shoe_size>3</shoe_size><age>"))
    assert status == 422 and "shoe_size" in text
    assert list(object_store.list("attachments/")) == []


def test_bad_attachments_are_refused(tutorial, collect, conn, object_store):
    xml = tutorial_instance(instanceID=new_instance_id(), picture="photo.jpg")
    parts = [("xml_submission_file", ("s.xml", xml, "text/xml")), ("photo.jpg", ("../photo.jpg", b"x", "image/jpeg"))]
    escape = requests.post(f"{collect.server_url}/submission", files=parts, auth=collect.auth)
    assert escape.status_code == 422 and "path separators" in message(escape)[1]
    parts = [("xml_submission_file", ("s.xml", xml, "text/xml")), ("photo.jpg", ("photo.jpg", b"x", "audio/mpeg"))]
    wrong_type = requests.post(f"{collect.server_url}/submission", files=parts, auth=collect.auth)
    assert wrong_type.status_code == 422 and message(wrong_type)[0] == "validation-failed"
    assert count(conn) == 0 and list(object_store.list("attachments/")) == []


def test_oversized_post_is_413_with_the_envelope(tutorial, collect, app, conn, monkeypatch):
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 4096)
    xml = tutorial_instance(picture="1335783522563.jpg")
    parts = [("xml_submission_file", ("s.xml", xml, "text/xml")),
             ("1335783522563.jpg", ("1335783522563.jpg", JPEG.read_bytes(), "image/jpeg"))]
    answer = requests.post(f"{collect.server_url}/submission", files=parts, auth=collect.auth)
    assert answer.status_code == 413 and message(answer)[0] == "payload-too-large"
    assert answer.headers["X-OpenRosa-Accept-Content-Length"] == "4096"
    assert count(conn) == 0


def test_encrypted_submissions_are_refused_plainly(client, admin_key, collect, conn):
    upload_form(client, admin_key, CENTRAL / "forms" / "encrypted.xml")
    status, _, text = _refused(collect, conn, (CENTRAL / "instances" / "encrypted" / "one.xml").read_bytes())
    assert status == 422 and "encrypted" in text


def test_choice_not_offered_by_the_form_is_refused(client, admin_key, collect, conn):
    """formhub kept transportation's `none` though the form offers no such choice; fieldpipe refuses it."""
    upload_form(client, admin_key, TRANSPORTATION / "transportation.xls")
    instances = sorted((TRANSPORTATION / "instances").glob("*/*.xml"))
    codes = [collect.submit(path.read_bytes())[0].status_code for path in instances]
    assert codes == [201, 422, 201, 201]
    assert count(conn) == 3


def test_a_new_xlsform_version_routes_old_and_new_submissions(tutorial, client, admin_key, collect, conn):
    with open(TUTORIAL / "tutorial_w_repeats.xform.pyxform-4.5.0.xml", "rb") as handle:
        data = handle.read().replace(b"<name/><age/>", b"<name/><nickname/><age/>").replace(
            b'<bind nodeset="/data/name" type="string"/>',
            b'<bind nodeset="/data/name" type="string"/><bind nodeset="/data/nickname" type="string"/>')
    answer = client.patch("/api/v1/forms/tutorial-w-repeats", data={"file": (io.BytesIO(data), "t.xml")},
                        headers=auth(admin_key), content_type="multipart/form-data")
    assert answer.status_code == 200 and answer.get_json()["version"] == 2
    assert b'version="2"' in collect.download(collect.form_list()[0]["downloadUrl"])
    old = tutorial_instance().replace(b"<tutorial_w_repeats ", b'<tutorial_w_repeats version="1" ')
    new = tutorial_instance(instanceID=new_instance_id()).replace(
        b"<tutorial_w_repeats ", b'<tutorial_w_repeats version="2" ').replace(b"<age>", b"<nickname>B</nickname><age>")
    assert [collect.submit(x)[0].status_code for x in (old, new)] == [201, 201]
    versions = [r["version"] for r in conn.execute(
        "SELECT v.version FROM responses r JOIN form_versions v ON v.id = r.form_version_id ORDER BY r.id")]
    assert versions == [1, 2]


def test_an_xform_update_with_settings_replaces_them_and_a_published_version_with_other_content_is_refused(
        tutorial, client, admin_key, conn):
    with open(TUTORIAL / "tutorial_w_repeats.xform.pyxform-4.5.0.xml", "rb") as handle:
        seven = handle.read().replace(b'<data id="tutorial_w_repeats">', b'<data id="tutorial_w_repeats" version="7">')

    def upload(data: bytes, **fields):
        return client.patch("/api/v1/forms/tutorial-w-repeats", data={"file": (io.BytesIO(data), "t.xml"), **fields},
                            headers=auth(admin_key), content_type="multipart/form-data")

    sheet = {"spreadsheet_id": "tutorial-sheet", "worksheet": "Tutorial"}
    answer = upload(seven, settings=json.dumps({"sheet": sheet}))
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["settings"]["sheet"] == sheet
    assert client.get("/api/v1/forms/tutorial-w-repeats", headers=auth(admin_key)).get_json()["settings"]["sheet"] == sheet

    other_content = seven.replace(b"<name/><age/>", b"<name/><nickname/><age/>").replace(
        b'<bind nodeset="/data/name" type="string"/>',
        b'<bind nodeset="/data/name" type="string"/><bind nodeset="/data/nickname" type="string"/>')
    refused = upload(other_content)
    assert refused.status_code == 422
    assert [{k: e[k] for k in ("field", "code", "message")} for e in refused.get_json()["errors"]] == [
        {"field": "file", "code": "version",
         "message": "version '7' is already published with different content; change the version in settings"}]
    assert [r["xform_version"] for r in conn.execute("SELECT xform_version FROM form_versions ORDER BY id")] == ["1", "7"]


def test_an_xform_receipt_may_name_a_text_question_and_a_long_xform_id_gives_a_slug_of_63(client, admin_key, conn,
                                                                                          tmp_path):
    """XLSForm has no phone type: a receipt names a text question, on upload and on a new version."""
    xml = (TUTORIAL / "tutorial_w_repeats.xform.pyxform-4.5.0.xml").read_bytes()
    long_id = "household_visit_" + "x" * 60
    path = tmp_path / "long.xml"
    path.write_bytes(xml.replace(b'id="tutorial_w_repeats"', f'id="{long_id}"'.encode()))
    receipt = json.dumps({"sms_receipt": {"phone_question": "name", "template": "Thanks {name}"}})
    created = upload_form(client, admin_key, path, settings=receipt)
    assert created.status_code == 201, created.get_json()
    slug = created.get_json()["slug"]
    assert slug == long_id.replace("_", "-")[:63] and len(slug) == 63
    updated = client.patch(f"/api/v1/forms/{slug}", data={"file": (io.BytesIO(path.read_bytes()), "t.xml"),
                                                          "settings": receipt},
                           headers=auth(admin_key), content_type="multipart/form-data")
    assert updated.status_code == 200, updated.get_json()
    assert updated.get_json()["settings"]["sms_receipt"]["phone_question"] == "name"


def test_xform_uploads_that_cannot_be_a_form_are_refused_naming_the_field_and_store_nothing(
        tutorial, client, admin_key, conn, tmp_path):
    xform = TUTORIAL / "tutorial_w_repeats.xform.pyxform-4.5.0.xml"

    def fields(answer) -> list[tuple[str, str, str]]:
        assert answer.status_code == 422, answer.get_json()
        return [(e["field"], e["code"], e["message"]) for e in answer.get_json()["errors"]]

    def update(data: bytes, **form):
        return client.patch("/api/v1/forms/tutorial-w-repeats", data={"file": (io.BytesIO(data), "t.xml"), **form},
                            headers=auth(admin_key), content_type="multipart/form-data")

    before = client.get("/api/v1/forms/tutorial-w-repeats", headers=auth(admin_key)).get_json()
    notes = tmp_path / "notes.txt"
    notes.write_text("not a form")
    assert fields(upload_form(client, admin_key, notes, slug="notes")) == [
        ("file", "file_type", "upload an XLSForm (.xlsx, .xls) or an XForm (.xml)")]
    other = xform.read_bytes().replace(b'id="tutorial_w_repeats"', b'id="other_form"')
    (tmp_path / "other.xml").write_bytes(other)
    assert fields(upload_form(client, admin_key, tmp_path / "other.xml", settings="{not json")) == [
        ("settings", "format", "must be a JSON object")]
    assert fields(upload_form(client, admin_key, tmp_path / "other.xml", settings=json.dumps({"sheet": {}}))) == [
        ("settings.sheet.spreadsheet_id", "required", "must name the target spreadsheet")]
    again = upload_form(client, admin_key, xform, slug="tutorial-again")
    assert again.status_code == 409 and again.get_json()["code"] == "409.2"
    assert again.get_json()["detail"] == ("a form with slug 'tutorial-again' or XForm id 'tutorial_w_repeats' "
                                          "already exists")

    assert fields(update(other)) == [
        ("file", "xform_id", "the form's XForm id is 'tutorial_w_repeats', the upload's is 'other_form'")]
    assert fields(update(xform.read_bytes(), settings=json.dumps({"sheet": {"spreadsheet_id": ""}}))) == [
        ("settings.sheet.spreadsheet_id", "required", "must name the target spreadsheet")]
    assert fields(client.patch("/api/v1/forms/tutorial-w-repeats", headers=auth(admin_key), json={
        "questions": [{"key": "name", "label": "Name", "type": "text"}]})) == [
        ("questions", "xform", "this form's questions come from its XForm: upload a new XLSForm or XForm as the "
         "multipart part 'file'")]

    assert client.get("/api/v1/forms/tutorial-w-repeats", headers=auth(admin_key)).get_json() == before
    assert [r["slug"] for r in conn.execute("SELECT slug FROM forms")] == ["tutorial-w-repeats"]
    assert count(conn, "form_versions") == 1


def test_form_media_are_listed_in_the_manifest_and_downloaded(client, admin_key, collect, object_store):
    logo = JPEG.read_bytes()[:5000]
    with open(TUTORIAL / "tutorial_w_repeats.xls", "rb") as handle:
        answer = client.post("/api/v1/forms", headers=auth(admin_key), content_type="multipart/form-data",
                             data={"file": (handle, "tutorial_w_repeats.xls"), "media": (io.BytesIO(logo), "logo.jpg")})
    assert answer.status_code == 201, answer.get_json()
    upload_form(client, admin_key, CENTRAL / "forms" / "simple.xml")
    listed = {f["formID"]: f for f in collect.form_list()}
    assert "manifestUrl" not in listed["simple"], "no media, no manifest"
    manifest = ET.fromstring(collect.download(listed["tutorial_w_repeats"]["manifestUrl"]))
    ns = "{http://openrosa.org/xforms/xformsManifest}"
    [media] = manifest.iter(f"{ns}mediaFile")
    assert media.findtext(f"{ns}filename") == "logo.jpg"
    assert media.findtext(f"{ns}hash") == "md5:" + hashlib.md5(logo).hexdigest()
    assert collect.download(media.findtext(f"{ns}downloadUrl")) == logo
    with open(CENTRAL / "forms" / "withrepeat.xml", "rb") as handle:
        bad = client.post("/api/v1/forms", headers=auth(admin_key), content_type="multipart/form-data",
                          data={"file": (handle, "withrepeat.xml"), "media": (io.BytesIO(b"x"), "../x.png")})
    assert bad.status_code == 422 and "path separators" in bad.get_json()["errors"][0]["message"]
    assert [f["formID"] for f in collect.form_list()] == ["simple", "tutorial_w_repeats"], "nothing stored"


def test_production_refuses_openrosa_over_plain_http(collect, live_api, collector_key, monkeypatch):
    monkeypatch.setenv("FIELDPIPE_ENV", "production")
    plain = requests.head(f"{live_api}/openrosa/acme/submission", auth=("tablet", collector_key))
    assert plain.status_code == 403
    behind_tls = requests.head(f"{live_api}/openrosa/acme/submission", auth=("tablet", collector_key),
                               headers={"X-Forwarded-Proto": "https"})
    assert behind_tls.status_code == 204
