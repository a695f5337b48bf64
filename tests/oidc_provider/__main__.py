"""Serve the test OpenID Connect provider: ``python -m tests.oidc_provider --port P --redirect-uri URI --db PATH``."""

import argparse
import os

import django
from django.core.management import call_command


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redirect-uri", required=True)
    parser.add_argument("--db", required=True)
    args = parser.parse_args()
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.oidc_provider.settings"
    os.environ["OIDC_PROVIDER_DB"] = args.db
    django.setup()

    from django.contrib.auth.models import Group, User
    from oauth2_provider.models import Application

    from tests.oidc_provider import CLIENT_ID, CLIENT_SECRET, PASSWORD, PEOPLE

    call_command("migrate", interactive=False, verbosity=0)
    for username, (email, groups) in PEOPLE.items():
        user = User.objects.create_user(username, email, PASSWORD)
        for name in groups:
            user.groups.add(Group.objects.get_or_create(name=name)[0])
    Application.objects.create(
        name="Mogplex board",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=args.redirect_uri,
        skip_authorization=True,
        algorithm=Application.RS256_ALGORITHM,
    )
    call_command("runserver", f"127.0.0.1:{args.port}", use_reloader=False, use_threading=True)


if __name__ == "__main__":
    main()
