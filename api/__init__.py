"""The ingestion API: a Flask application factory over the `fieldpipe` package."""

from api.app import create_app

__all__ = ["create_app"]
