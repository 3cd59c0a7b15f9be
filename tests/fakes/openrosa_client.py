"""A client that speaks OpenRosa the way ODK Collect does, over real HTTP (requests).

    collect = CollectClient("http://127.0.0.1:5000/openrosa/acme", username="tablet-3", password=key)
    forms = collect.form_list()                      # [{"formID", "name", "version", "hash", "downloadUrl"}]
    xform = collect.download(forms[0]["downloadUrl"])
    answers = collect.submit(xml, {"photo.jpg": jpeg})   # HEAD first, then one POST per slice of files

Like Collect it asks without credentials first and answers the Basic challenge; before posting it sends
HEAD to learn `X-OpenRosa-Accept-Content-Length`, and splits the files across POSTs so that each stays
under that size, repeating the XML in every POST (a single file larger than the limit goes alone).
"""

from __future__ import annotations

import mimetypes
import xml.etree.ElementTree as ET
from email.utils import formatdate

import requests

XFORMS_LIST = "{http://openrosa.org/xforms/xformsList}"


class CollectClient:
    def __init__(self, server_url: str, username: str, password: str, split_at: int | None = None):
        self.server_url = server_url.rstrip("/")
        self.auth = (username, password)
        self.split_at = split_at  # a smaller limit than the server's, to force split posts in tests
        self.session = requests.Session()

    def _request(self, method: str, url: str, **kwargs) -> requests.Response:
        headers = {"X-OpenRosa-Version": "1.0", "Date": formatdate(usegmt=True), **kwargs.pop("headers", {})}
        answer = self.session.request(method, url, headers=headers, **kwargs)
        if answer.status_code == 401 and "basic" in answer.headers.get("WWW-Authenticate", "").lower():
            answer = self.session.request(method, url, headers=headers, auth=self.auth, **kwargs)
        return answer

    def form_list(self, form_id: str | None = None) -> list[dict]:
        answer = self._request("GET", f"{self.server_url}/formList", params={"formID": form_id} if form_id else None)
        answer.raise_for_status()
        return [{child.tag.replace(XFORMS_LIST, ""): child.text for child in xform}
                for xform in ET.fromstring(answer.content).iter(f"{XFORMS_LIST}xform")]

    def download(self, url: str) -> bytes:
        answer = self._request("GET", url)
        answer.raise_for_status()
        return answer.content

    def head(self) -> requests.Response:
        return self._request("HEAD", f"{self.server_url}/submission")

    def submit(self, xml: bytes, files: dict[str, bytes] | None = None) -> list[requests.Response]:
        """HEAD, then POST the XML with the files in as few slices as the size limit allows; every answer."""
        head = self.head()
        if head.status_code != 204 or "X-OpenRosa-Version" not in head.headers:
            return [head]
        limit = int(head.headers["X-OpenRosa-Accept-Content-Length"])
        if self.split_at:
            limit = min(limit, self.split_at)
        answers = []
        for chunk in self._slices(xml, files or {}, limit):
            parts = [("xml_submission_file", ("submission.xml", xml, "text/xml"))]
            parts += [(name, (name, data, mimetypes.guess_type(name)[0] or "application/octet-stream"))
                      for name, data in chunk]
            answer = self._request("POST", f"{self.server_url}/submission", files=parts)
            answers.append(answer)
            if answer.status_code not in (201, 202):
                break
        return answers

    @staticmethod
    def _slices(xml: bytes, files: dict[str, bytes], limit: int) -> list[list[tuple[str, bytes]]]:
        slices: list[list[tuple[str, bytes]]] = [[]]
        size = len(xml)
        for name, data in files.items():
            if slices[-1] and size + len(data) > limit:
                slices.append([])
                size = len(xml)
            slices[-1].append((name, data))
            size += len(data)
        return slices
