"""What the OpenRosa tests share: the real fixtures (read from the shared folder at run time) and uploads."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from tests.helpers import auth

REPO = Path(__file__).resolve().parent.parent


def fixtures_dir() -> Path:
    for candidate in (REPO.parent / "shared" / "fixtures", REPO.parent.parent / "shared" / "fixtures",
                      Path("/work/shared/fixtures")):
        if candidate.is_dir():
            return candidate
    pytest.skip("the shared real-client fixtures are not on this machine")


FIXTURES = fixtures_dir()
TUTORIAL = FIXTURES / "formhub" / "tutorial_w_repeats"
TRANSPORTATION = FIXTURES / "formhub" / "transportation"
CENTRAL = FIXTURES / "central-backend"
WIDGETS = FIXTURES / "pyxform" / "widgets.xls"
JPEG = TRANSPORTATION / "instances" / "transport_2011-07-25_19-05-49" / "1335783522563.jpg"


def upload_form(client, key: str, path: Path, **fields) -> object:
    """POST /api/v1/forms with the file as multipart, as an admin would from a browser."""
    with open(path, "rb") as handle:
        data = {"file": (handle, path.name), **fields}
        return client.post("/api/v1/forms", data=data, headers=auth(key), content_type="multipart/form-data")


def tutorial_instance(**replace: str) -> bytes:
    """The real tutorial submission, with elements' text replaced (e.g. a new instanceID, a picture's name)."""
    xml = (TUTORIAL / "tutorial_w_repeats.xml").read_bytes()
    for tag, text in replace.items():
        xml, count = re.subn(rb"<%s\s*/>|<%s>[^<]*</%s>" % ((tag.encode(),) * 3),
                             b"<%s>%s</%s>" % (tag.encode(), text.encode(), tag.encode()), xml, count=1)
        assert count == 1, tag
    return xml


def new_instance_id() -> str:
    return f"uuid:{uuid.uuid4()}"
