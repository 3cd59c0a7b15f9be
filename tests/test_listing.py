"""Listing: keyset pages, `since`, a filter on a choice answer and word search, all served by indexes."""

import pytest

from fieldpipe.db import connect
from tests.helpers import auth, submission

URL = "/api/v1/forms/household-survey/responses"


@pytest.fixture
def responses(client, make_form, collector_key):
    make_form()
    words = {"pune": ["पानी", "नीर"], "nagpur": ["जल"], "shimla": ["पाणी"]}
    items = []
    for i in range(30):
        city = ["pune", "nagpur", "shimla"][i % 3]
        body = submission()
        body["answers"].update(city=city, local_word=words[city][i % len(words[city])], name=f"Person {i}")
        items.append(body)
    resp = client.post(f"{URL}/batch", json={"items": items}, headers=auth(collector_key))
    assert resp.get_json()["summary"]["created"] == 30
    return items


def test_keyset_pages_cover_everything_once(client, responses, collector_key):
    seen, cursor = [], None
    while True:
        page = client.get(URL, query_string={"limit": 7, **({"cursor": cursor} if cursor else {})},
                          headers=auth(collector_key)).get_json()
        seen += [r["submission_id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(r["submission_id"] for r in responses)
    assert len(seen) == len(set(seen))


def test_local_words_given_by_respondents_of_a_city(client, responses, collector_key):
    page = client.get(URL, query_string={"answer.city": "pune"}, headers=auth(collector_key)).get_json()
    assert len(page["items"]) == 10
    assert {r["answers"]["local_word"] for r in page["items"]} == {"पानी", "नीर"}


def test_word_search_over_text_answers(client, responses, collector_key):
    page = client.get(URL, query_string={"q": "नीर"}, headers=auth(collector_key)).get_json()
    assert {r["answers"]["city"] for r in page["items"]} == {"pune"}
    assert len(page["items"]) == 5
    both = client.get(URL, query_string={"q": "person 4"}, headers=auth(collector_key)).get_json()
    assert {r["answers"]["name"] for r in both["items"]} == {"Person 4"}


def test_since_filters_on_received_time(client, responses, collector_key):
    everything = client.get(URL, query_string={"limit": 1000}, headers=auth(collector_key)).get_json()["items"]
    later = client.post(URL, json=submission(), headers=auth(collector_key)).get_json()
    page = client.get(URL, query_string={"since": later["received_at"]}, headers=auth(collector_key)).get_json()
    assert [r["submission_id"] for r in page["items"]] == [later["submission_id"]]
    assert len(everything) == 30


def test_bad_listing_parameters(client, responses, collector_key):
    assert client.get(URL, query_string={"answer.monthly_income": "5"}, headers=auth(collector_key)).status_code == 422
    assert client.get(URL, query_string={"limit": 0}, headers=auth(collector_key)).status_code == 422
    assert client.get(URL, query_string={"cursor": "garbage"}, headers=auth(collector_key)).status_code == 422
    assert client.get(URL, query_string={"since": "last week"}, headers=auth(collector_key)).status_code == 422


def test_city_filter_and_word_search_use_indexes(clean_db, responses):
    """The seed case must not scan: with statistics gathered, the planner picks the GIN indexes."""
    with connect(clean_db, autocommit=True) as conn:
        conn.execute("""INSERT INTO responses (form_id, form_version_id, submission_id, collector_id, submitted_at,
                                               answers, content_hash, search_words)
                        SELECT form_id, form_version_id, gen_random_uuid(), 'bulk', now(),
                               jsonb_build_object('city', 'varanasi-' || g, 'local_word', 'w' || g), 'h', ARRAY['w' || g]
                          FROM responses, generate_series(1, 3000) g LIMIT 20000""")
        conn.execute("ANALYZE responses")
        for where in ("answers @> '{\"city\": \"pune\"}'", "search_words @> ARRAY['नीर']"):
            plan = "\n".join(r["QUERY PLAN"] for r in conn.execute(f"EXPLAIN SELECT * FROM responses WHERE {where}"))
            assert "Index Scan" in plan and "Seq Scan" not in plan, plan


def test_boolean_and_multi_choice_answers_filter_the_listing(client, make_form, collector_key):
    make_form("farms", questions=[
        {"key": "consent", "label": "Consent", "type": "boolean", "required": True},
        {"key": "crops", "label": "Crops", "type": "multi_choice",
         "choices": [{"value": "rice", "label": "Rice"}, {"value": "wheat", "label": "Wheat"}]}])
    answers = [{"consent": True, "crops": ["rice", "wheat"]}, {"consent": False, "crops": ["wheat"]},
               {"consent": True, "crops": []}]
    items = [submission(answers=a) for a in answers]
    client.post("/api/v1/forms/farms/responses/batch", json={"items": items}, headers=auth(collector_key))

    def matching(**filters):
        page = client.get("/api/v1/forms/farms/responses", headers=auth(collector_key),
                          query_string={f"answer.{k}": v for k, v in filters.items()}).get_json()
        return [items.index(next(i for i in items if i["submission_id"] == r["submission_id"]))
                for r in page["items"]]

    assert matching(consent="true") == [0, 2]
    assert matching(consent="True") == [0, 2]
    assert matching(consent="false") == [1]
    assert matching(crops="rice") == [0]
    assert matching(crops="wheat") == [0, 1]
    assert matching(consent="true", crops="wheat") == [0]
