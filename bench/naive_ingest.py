"""The baseline for `ingest_single`: the usual first version, one ORM row per answer in an EAV table.

Served by gunicorn exactly like the real API so the comparison is fair: `gunicorn bench.naive_ingest:app`.
"""

from __future__ import annotations

import functools
import os

from flask import Flask, request
from sqlalchemy import ForeignKey, String, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from fieldpipe.db import sqlalchemy_url


class Base(DeclarativeBase):
    pass


class NaiveSubmission(Base):
    __tablename__ = "naive_submissions"
    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[str] = mapped_column(String(36), unique=True)
    collector_id: Mapped[str] = mapped_column(String(100))


class NaiveAnswer(Base):
    __tablename__ = "naive_answers"
    id: Mapped[int] = mapped_column(primary_key=True)
    submission: Mapped[int] = mapped_column(ForeignKey("naive_submissions.id"))
    question_key: Mapped[str] = mapped_column(String(63))
    value: Mapped[str] = mapped_column(String)


def create_tables(database_url: str) -> None:
    """Run once before the workers start: workers creating the tables together would race."""
    Base.metadata.create_all(create_engine(sqlalchemy_url(database_url)))


@functools.cache
def engine():
    return create_engine(sqlalchemy_url(os.environ["DATABASE_URL"]), pool_size=8)


app = Flask(__name__)


@app.post("/naive/responses")
def post_response():
    body = request.get_json()
    with Session(engine()) as session:
        submission = NaiveSubmission(submission_id=body["submission_id"], collector_id=body["collector"]["id"])
        session.add(submission)
        session.flush()
        for key, value in body["answers"].items():
            session.add(NaiveAnswer(submission=submission.id, question_key=key, value=str(value)))
            session.flush()
        session.commit()
    return {"submission_id": body["submission_id"]}, 201
