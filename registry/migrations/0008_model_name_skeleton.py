"""Model.name_skeleton: names that look alike (registry.names.lookalike_key) are refused in a
context by a unique constraint. Existing models get their key; where two already look alike,
the older keeps it and the newer gets a key of its own (`kept-<id>`), so nothing is renamed
and a new look-alike of either is still refused by the older one's key."""

from django.db import migrations, models


def fill_keys(apps, schema_editor):
    from registry.names import lookalike_key

    Model = apps.get_model("registry", "Model")
    taken: set[tuple[int, str]] = set()
    for model in Model.objects.order_by("context_id", "created_at", "id").only("id", "context_id", "name").iterator():
        key = lookalike_key(model.name)
        if (model.context_id, key) in taken:
            key = f"kept-{model.id.hex}"
        taken.add((model.context_id, key))
        Model.objects.filter(pk=model.pk).update(name_skeleton=key)


class Migration(migrations.Migration):

    dependencies = [
        ('registry', '0007_format_processing_lease'),
    ]

    operations = [
        migrations.AddField(
            model_name='model',
            name='name_skeleton',
            field=models.CharField(default='', editable=False, max_length=64),
            preserve_default=False,
        ),
        migrations.RunPython(fill_keys, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name='model',
            constraint=models.UniqueConstraint(fields=('context', 'name_skeleton'), name='model_unique_lookalike_in_context'),
        ),
    ]
