"""Migration 0008 gives existing models their look-alike key without renaming any, even when
two of them already look alike (SQLite and PostgreSQL)."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("registry", "0007_format_processing_lease")]
AFTER = [("registry", "0008_model_name_skeleton")]


@pytest.mark.django_db(transaction=True)
def test_existing_look_alikes_keep_their_names_and_new_ones_are_refused():
    from registry.names import lookalike_key

    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    try:
        apps = executor.loader.project_state(BEFORE).apps
        Context, Model = apps.get_model("registry", "Context"), apps.get_model("registry", "Model")
        acme, other = Context.objects.create(slug="acme", name="Acme"), Context.objects.create(slug="other", name="O")
        first = Model.objects.create(context=acme, name="Caf\u00e9-Model", name_key="caf\u00e9-model")
        twin = Model.objects.create(context=acme, name="Caf\u00e9-\u041codel", name_key="caf\u00e9-\u043codel")
        elsewhere = Model.objects.create(context=other, name="Caf\u00e9-Model", name_key="caf\u00e9-model")
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(AFTER)
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())

    from registry.models import Model as CurrentModel

    keys = dict(CurrentModel.objects.values_list("pk", "name_skeleton"))
    assert keys[first.pk] == keys[elsewhere.pk] == lookalike_key("Caf\u00e9-Model")
    assert keys[twin.pk] == f"kept-{twin.pk.hex}"
    assert CurrentModel.objects.get(pk=twin.pk).name == "Caf\u00e9-\u041codel"

    from registry import services
    from registry.errors import NameTaken
    from registry.models import Context as CurrentContext

    with pytest.raises(NameTaken):
        services.model_create(actor=None, context=CurrentContext.objects.get(slug="acme"), name="\u0421af\u00e9-Model")
