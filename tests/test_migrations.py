"""Migrations on the database the suite runs on (SQLite, and PostgreSQL in CI's second pass)."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor


def test_the_models_and_the_migrations_agree(db: None) -> None:
    out = io.StringIO()
    call_command("makemigrations", "dashboard", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_every_migration_goes_back_to_the_start_and_forward_again_keeping_rows() -> None:
    executor = MigrationExecutor(connection)
    leaves = [key for key in executor.loader.graph.leaf_nodes() if key[0] == "dashboard"]
    try:
        executor.migrate([("dashboard", "0001_initial")])
        old = MigrationExecutor(connection).loader.project_state([("dashboard", "0001_initial")]).apps
        old.get_model("dashboard", "TrackedRun").objects.create(
            run_id="11111111-1111-4111-8111-111111111111", via="command"
        )
        executor = MigrationExecutor(connection)
        executor.migrate(leaves)
        new = MigrationExecutor(connection).loader.project_state(leaves).apps
        assert new.get_model("dashboard", "TrackedRun").objects.count() == 1
        assert new.get_model("dashboard", "RunSummary").objects.count() == 0

        executor = MigrationExecutor(connection)
        executor.migrate([("dashboard", None)])
        with connection.cursor() as cursor:
            tables = connection.introspection.table_names(cursor)
        assert not [t for t in tables if t.startswith("dashboard_")]
    finally:
        MigrationExecutor(connection).migrate(leaves)
    with connection.cursor() as cursor:
        assert "dashboard_runsummary" in connection.introspection.table_names(cursor)
