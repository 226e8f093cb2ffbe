import factory
from django.contrib.auth import get_user_model

from registry.models import Context, Model, Version
from registry.names import lookalike_key


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("secret-pass")


class ContextFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Context

    slug = factory.Sequence(lambda n: f"ctx-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.title())


class ModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Model

    context = factory.SubFactory(ContextFactory)
    name = factory.Sequence(lambda n: f"model-{n}")
    name_key = factory.LazyAttribute(lambda o: o.name.casefold())
    name_skeleton = factory.LazyAttribute(lambda o: lookalike_key(o.name))


class VersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Version

    model = factory.SubFactory(ModelFactory)
    number = factory.Sequence(lambda n: n + 1)

