"""Run the test identity provider: `python -m tests.oidc_provider.serve PORT CLIENT_ID SECRET
REDIRECT_URI` with OIDC_PROVIDER_DB set. Generates its RSA signing key, migrates, registers the
registry as a confidential client (authorization code, RS256, no consent screen) and serves
HTTP on 127.0.0.1:PORT until terminated."""

import os
import sys


def main(port: str, client_id: str, secret: str, redirect_uri: str) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    os.environ["OIDC_PROVIDER_RSA_KEY"] = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.oidc_provider.settings"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from oauth2_provider.models import Application

    Application.objects.update_or_create(client_id=client_id, defaults={
        "name": "Model registry", "client_secret": secret, "client_type": Application.CLIENT_CONFIDENTIAL,
        "authorization_grant_type": Application.GRANT_AUTHORIZATION_CODE, "redirect_uris": redirect_uri,
        "algorithm": Application.RS256_ALGORITHM, "skip_authorization": True,
    })
    call_command("runserver", f"127.0.0.1:{port}", use_reloader=False, use_threading=True, skip_checks=True)


if __name__ == "__main__":
    main(*sys.argv[1:5])
