"""A real OpenID Connect provider for the single sign-on tests: django-oauth-toolkit in its own process.

``python -m tests.oidc_provider --port P --redirect-uri URI --db PATH`` migrates a
fresh SQLite file, makes the people and the board's client below, and serves
until stopped. Its issuer is ``http://127.0.0.1:P/o``.
"""

CLIENT_ID = "mogplex-board"
CLIENT_SECRET = "board-client-secret"
PASSWORD = "provider password"
# username -> (email, groups)
PEOPLE: dict[str, tuple[str, list[str]]] = {
    "ada": ("ada@example.com", []),
    "bob": ("bob@elsewhere.org", []),
    "carol": ("carol@elsewhere.org", ["board-viewers"]),
}
