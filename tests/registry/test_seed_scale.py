"""manage.py seed_scale: a tiny run fills a context with rows the registry reads like its own."""

import io

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import Count, Max

from registry.models import Alias, AuditEvent, Context, Format, Metric, Model, Version
from tests.conftest import client_for

needs_postgresql = pytest.mark.skipif(connection.vendor != "postgresql", reason="seed_scale is PostgreSQL only")


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor == "postgresql", reason="the refusal is for other databases")
def test_refused_clearly_on_another_database():
    with pytest.raises(CommandError, match="PostgreSQL"):
        call_command("seed_scale", "--models", "10")
    assert not Model.objects.exists()


@needs_postgresql
@pytest.mark.django_db(transaction=True)
def test_a_tiny_run_fills_a_context_the_registry_reads():
    out = io.StringIO()
    call_command("seed_scale", "--context", "tiny", "--models", "100", stdout=out, stderr=io.StringIO())
    assert out.getvalue().strip() == "tiny models=100 versions=1000 formats=3000 metrics=10000 events=10000"
    context = Context.objects.get(slug="tiny")
    models = Model.objects.filter(context=context)
    versions = Version.objects.filter(model__context=context)
    assert models.count() == 100 and versions.count() == 1000
    assert Format.objects.filter(version__model__context=context).count() == 3000
    assert Metric.objects.filter(version__model__context=context).count() == 10000
    seeded_events = AuditEvent.objects.filter(context=context).exclude(actor_name="operator")
    assert seeded_events.count() == 10000

    # Within the limits, numbered below each model's counter; some model at the limit to list.
    per_model = models.annotate(n=Count("versions"), top=Max("versions__number"))
    assert max(m.n for m in per_model) == 30 and min(m.n for m in per_model) >= 0
    assert all(m.top is None or m.top < m.next_version_number for m in per_model)
    assert {v.status for v in versions} == {"draft", "published"}
    assert not versions.filter(status="published", published_at__isnull=True).exists()
    assert not Format.objects.filter(version__status="published").exclude(status="ready").exists()
    assert Alias.objects.filter(model__context=context).exclude(version__status="published").count() == 0
    assert all(a.version.model_id == a.model_id for a in Alias.objects.filter(model__context=context))
    assert len(set(seeded_events.values_list("actor_name", flat=True))) >= 5
    # The generated search columns are the database's.
    model = models.order_by("name_key").first()
    assert model.name_upper == model.name.upper()

    # Read through the API like any other context: search a piece of a name or a description.
    client = client_for(context.memberships.get(user__username="ken").user)
    piece = model.name[-8:]
    found = client.get("/api/v1/contexts/tiny/models/", {"search": piece}).json()["results"]
    assert model.name in [m["name"] for m in found]
    experiment = model.description.split("experiment ")[1][:6].upper()
    found = client.get("/api/v1/contexts/tiny/models/", {"search": experiment}).json()["results"]
    assert [m["name"] for m in found] == [model.name]
    listed = client.get(f"/api/v1/models/{model.pk}/versions/").json()
    assert listed["count"] == model.versions.count()

    with pytest.raises(CommandError, match="already has models"):
        call_command("seed_scale", "--context", "tiny", "--models", "5", stderr=io.StringIO())


@needs_postgresql
@pytest.mark.django_db
@pytest.mark.parametrize("arguments", [["--models", "0"], ["--models", "2", "--versions", "61"],
                                       ["--models", "2", "--formats", "7", "--versions", "2"],
                                       ["--models", "2", "--versions", "0", "--metrics", "5"]])
def test_counts_past_the_limits_are_refused(arguments):
    with pytest.raises(CommandError):
        call_command("seed_scale", *arguments)
    assert not Model.objects.exists()
