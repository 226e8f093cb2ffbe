"""Indexes for a registry of millions of rows (issue 17): trigram indexes for the model search,
and indexes serving each page of the audit log in its order (whole, by actor, by object).

On PostgreSQL every index is built CONCURRENTLY: writes go on while it builds (every write
request appends to the audit log, so a locked audit table would stall them all), and the
migration therefore runs outside a transaction. The trigram indexes exist only there (pg_trgm);
on SQLite they are skipped and the other indexes are built plainly.
"""

import django.contrib.postgres.indexes
from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations, models


class AddIndexOnline(migrations.AddIndex):
    """AddIndex built CONCURRENTLY on PostgreSQL; elsewhere built plainly, or skipped when
    `postgresql_only` (an index of a PostgreSQL extension)."""

    def __init__(self, model_name, index, postgresql_only=False):
        super().__init__(model_name, index)
        self.postgresql_only = postgresql_only

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.add_index(model, self.index, concurrently=True)
        elif not self.postgresql_only:
            schema_editor.add_index(model, self.index)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        model = from_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.remove_index(model, self.index, concurrently=True)
        elif not self.postgresql_only:
            schema_editor.remove_index(model, self.index)

    def deconstruct(self):
        name, args, kwargs = super().deconstruct()
        if self.postgresql_only:
            kwargs["postgresql_only"] = True
        return name, args, kwargs


class RemoveIndexOnline(migrations.RemoveIndex):
    """RemoveIndex dropped CONCURRENTLY on PostgreSQL."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = from_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        index = from_state.models[app_label, self.model_name_lower].get_index_by_name(self.name)
        concurrently = {"concurrently": True} if schema_editor.connection.vendor == "postgresql" else {}
        schema_editor.remove_index(model, index, **concurrently)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        index = to_state.models[app_label, self.model_name_lower].get_index_by_name(self.name)
        concurrently = {"concurrently": True} if schema_editor.connection.vendor == "postgresql" else {}
        schema_editor.add_index(model, index, **concurrently)


class TrigramExtensionKept(TrigramExtension):
    """pg_trgm on PostgreSQL (a no-op elsewhere), left installed when migrating back: other
    indexes or users of the database may use it too."""

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        pass


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ('registry', '0010_upload_sessions'),
    ]

    operations = [
        TrigramExtensionKept(),
        AddIndexOnline(
            model_name='model',
            index=django.contrib.postgres.indexes.GinIndex(
                fields=['name_upper'], name='model_name_trgm', opclasses=['gin_trgm_ops']),
            postgresql_only=True,
        ),
        AddIndexOnline(
            model_name='model',
            index=django.contrib.postgres.indexes.GinIndex(
                fields=['description_upper'], name='model_description_trgm', opclasses=['gin_trgm_ops']),
            postgresql_only=True,
        ),
        AddIndexOnline(
            model_name='auditevent',
            index=models.Index(fields=['context', '-created_at', '-id'], name='audit_ctx_time_id'),
        ),
        # Replaced by the one above (same order, and the id that breaks ties).
        RemoveIndexOnline(
            model_name='auditevent',
            name='audit_ctx_time',
        ),
        AddIndexOnline(
            model_name='auditevent',
            index=models.Index(fields=['context', 'actor_name', '-created_at', '-id'], name='audit_ctx_actor'),
        ),
        AddIndexOnline(
            model_name='auditevent',
            index=models.Index(fields=['context', 'object_id', '-created_at', '-id'], name='audit_ctx_object'),
        ),
    ]
