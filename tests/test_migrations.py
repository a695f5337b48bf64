"""Migrations on the database the suite runs on (SQLite, and PostgreSQL in CI's second pass)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

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


@pytest.mark.django_db(transaction=True)
def test_kept_runs_get_the_columns_trends_group_by_when_those_are_added() -> None:
    before = [("dashboard", "0008_acknowledgement_job_run")]
    leaves = [key for key in MigrationExecutor(connection).loader.graph.leaf_nodes() if key[0] == "dashboard"]
    finished = datetime(2026, 6, 15, 12, 7, 30, tzinfo=UTC)
    try:
        executor = MigrationExecutor(connection)
        executor.migrate(before)
        old = executor.loader.project_state(before).apps.get_model("dashboard", "RunSummary")
        for n, pr_lag in enumerate((None, 90.5, -5.0)):
            old.objects.create(
                run_id=f"11111111-1111-4111-8111-11111111111{n}",
                source="ada",
                status="success",
                created_at=finished - timedelta(minutes=10),
                finished_at=finished,
                pr_at=None
                if pr_lag is None
                else finished - timedelta(minutes=10) + timedelta(seconds=pr_lag),
            )
        executor = MigrationExecutor(connection)
        executor.migrate(leaves)
        new = (
            MigrationExecutor(connection)
            .loader.project_state(leaves)
            .apps.get_model("dashboard", "RunSummary")
        )
        rows = new.objects.order_by("run_id").values_list("finished_slot", "pr_seconds")
        slot = int(finished.timestamp()) // 900
        assert list(rows) == [(slot, None), (slot, 90.5), (slot, None)]
    finally:
        MigrationExecutor(connection).migrate(leaves)
