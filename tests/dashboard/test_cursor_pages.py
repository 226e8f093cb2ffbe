"""The dashboard's long lists (a context's models, its audit log) page by cursor, as the API's:
Next and Previous links that keep the filters, a deep page costing the queries of the first,
and a 400 page for a cursor that is not one of the list's."""

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from registry import services
from registry.services.common import audit

pytestmark = pytest.mark.django_db


@pytest.fixture
def viewer(users):
    client = Client()
    client.force_login(users["viewer"])
    return client


def links(page: str) -> dict[str, str]:
    """rel -> query string of the page's Next/Previous links."""
    return {rel: href.replace("&amp;", "&") for href, rel in re.findall(r'href="(\?[^"]*)" rel="(next|prev)"', page)}


def walk(client, url, query=""):
    """The HTML of every page from `url` + `query`, by the Next links."""
    pages = []
    while True:
        r = client.get(url + query)
        assert r.status_code == 200, r.content[:300]
        pages.append(r.content.decode())
        query = links(pages[-1]).get("next")
        if query is None:
            return pages


def model_names(page: str) -> list[str]:
    return re.findall(r"<strong>([^<]+)</strong></a></td>", page)


def test_the_model_list_pages_by_cursor_keeping_search_and_sort(viewer, users, context):
    for index in range(60):
        services.model_create(actor=users["editor"], context=context, name=f"fraud-{index:02d}",
                              tags=["tabular"] if index % 2 else [])
    services.model_create(actor=users["editor"], context=context, name="speech")
    url = reverse("dashboard:model-list", kwargs={"ctx": context.slug})
    pages = walk(viewer, url, "?q=FRAUD&sort=-name")
    assert [len(model_names(page)) for page in pages] == [25, 25, 10]
    assert [name for page in pages for name in model_names(page)] == [f"fraud-{i:02d}" for i in range(59, -1, -1)]
    assert "rel=\"prev\"" not in pages[0] and "« First" in pages[2]
    back = viewer.get(url + links(pages[2])["prev"]).content.decode()
    assert model_names(back) == model_names(pages[1])
    tagged = walk(viewer, url, "?tag=tabular")
    assert [name for page in tagged for name in model_names(page)] == [f"fraud-{i:02d}" for i in range(1, 60, 2)]


def test_a_deep_model_page_costs_the_queries_of_the_first(viewer, users, context):
    for index in range(80):
        services.model_create(actor=users["editor"], context=context, name=f"m-{index:02d}", tags=["t"])
    url = reverse("dashboard:model-list", kwargs={"ctx": context.slug})
    viewer.get(url)
    query, counts = "", []
    while query is not None:
        with CaptureQueriesContext(connection) as captured:
            page = viewer.get(url + query).content.decode()
        counts.append(len(captured))
        query = links(page).get("next")
    assert len(counts) == 4 and set(counts) == {counts[0]}, counts
    sql = [q["sql"].upper() for q in captured.captured_queries]
    assert not any(" OFFSET " in statement or statement.startswith("SELECT COUNT(") for statement in sql), sql


def test_the_audit_log_pages_by_cursor_filtered_by_actor(viewer, users, context):
    for index in range(60):
        audit(actor=users["editor"] if index % 3 else users["admin"], context=context, action="model.update",
              object_type="model", object_id=f"m{index % 4}", summary=f"change {index:02d}.")
    url = reverse("dashboard:audit-list", kwargs={"ctx": context.slug})
    pages = walk(viewer, url, f"?actor={users['editor'].username}")
    summaries = [s for page in pages for s in re.findall(r"change (\d\d)\.", page)]
    assert summaries == [f"{i:02d}" for i in range(59, -1, -1) if i % 3]
    by_object = walk(viewer, url, "?object_id=m1")
    assert [s for page in by_object for s in re.findall(r"change (\d\d)\.", page)] == [
        f"{i:02d}" for i in range(59, -1, -1) if i % 4 == 1]


@pytest.mark.parametrize("name", ["dashboard:model-list", "dashboard:audit-list"])
def test_a_cursor_that_is_not_ours_is_a_400_page(viewer, context, name):
    r = viewer.get(reverse(name, kwargs={"ctx": context.slug}), {"cursor": "not-a-cursor"})
    assert r.status_code == 400
    assert "Invalid cursor" in r.content.decode()
