"""Forms: create, list, get by slug, update (a new version when the questions change)."""

from flask import Blueprint, request

from api import schemas
from api.context import endpoint, json_body
from api.examples import FORM
from api.spec import operation
from fieldpipe import forms, openrosa, paging
from fieldpipe.problems import FieldError, invalid

bp = Blueprint("forms", __name__, url_prefix="/api/v1/forms")


@bp.get("")
@operation("List the organization's forms, by slug", listing=schemas.Form)
@endpoint()
def list_forms(conn, caller):
    return forms.list_forms(conn, caller.organization_id, paging.from_query(request.args, forms.FORMS))


@bp.post("")
@operation("Create a form from JSON questions, or upload an XLSForm/XForm as the multipart part `file` (with `media` "
           "parts for the files it shows)", body=schemas.FormInput, upload=schemas.XFORM_UPLOAD,
           returns=schemas.Form, status=201,
           problems=("already-exists",), examples={"household survey": FORM},
           headers={"Location": "The new form's URL"})
@endpoint(admin=True)
def create_form(conn, caller):
    if request.mimetype == "multipart/form-data":
        form = forms.create_xform_form(conn, caller.organization_id, _uploaded_xform(), request.form)
        _store_media(conn, caller, form["slug"])
    else:
        form = forms.create_form(conn, caller.organization_id, json_body())
    return form, 201, {"Location": f"/api/v1/forms/{form['slug']}"}


@bp.get("/<slug>")
@operation("Get a form with its current questions", returns=schemas.Form)
@endpoint()
def get_form(conn, caller, slug):
    return forms.get_form(conn, caller.organization_id, slug)


@bp.patch("/<slug>")
@operation("Change a form's title, settings or questions; changed questions make a new version (responses keep "
           "the version they were posted against); or upload a new XLSForm/XForm as the multipart part `file`",
           body=schemas.FormPatch, upload=schemas.XFORM_UPLOAD, returns=schemas.Form,
           examples={"add a question": {"questions": FORM["questions"] + [
               {"key": "household_size", "label": "People in the household", "type": "integer"}]},
               "rename": {"title": "Household survey 2027"}})
@endpoint(admin=True)
def update_form(conn, caller, slug):
    if request.mimetype == "multipart/form-data":
        form = forms.update_xform_form(conn, caller.organization_id, slug, _uploaded_xform(), request.form)
        _store_media(conn, caller, slug)
        return form
    return forms.update_form(conn, caller.organization_id, slug, json_body())


def _uploaded_xform():
    """The multipart part `file`: an XLSForm (.xlsx/.xls) or an XForm (.xml)."""
    upload = request.files.get("file")
    if upload is None:
        raise invalid([FieldError("file", "required", "send the XLSForm or XForm as the multipart part 'file'")])
    return forms.read_upload(upload.read(), upload.filename or "")


def _store_media(conn, caller, slug: str) -> None:
    """Parts named `media`: files the form shows (jr://images/..., CSV choices), listed in its OpenRosa manifest."""
    parts = request.files.getlist("media")
    if parts:
        form = forms.get_form_row(conn, caller.organization_id, slug)
        openrosa.store_form_media(conn, caller.organization_id, form,
                                  [openrosa.Upload(p.filename or "", p.mimetype or None, p.read()) for p in parts])
