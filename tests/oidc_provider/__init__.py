"""A real OpenID Connect provider for the single sign-on tests: a small Django project on
django-oauth-toolkit's OIDC support, run in a process of its own by tests/sso_provider.py."""
