"""The admin: tracked runs and display tokens (list, revoke, see when each wall last polled)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from dashboard.models import DisplayToken, TrackedRun

# ModelAdmin is generic for the type checker only; at runtime it cannot be subscripted.
if TYPE_CHECKING:
    DisplayTokenAdminBase = admin.ModelAdmin[DisplayToken]
    TrackedRunAdminBase = admin.ModelAdmin[TrackedRun]
else:
    DisplayTokenAdminBase = TrackedRunAdminBase = admin.ModelAdmin


@admin.register(DisplayToken)
class DisplayTokenAdmin(DisplayTokenAdminBase):
    """Display tokens are issued by ``manage.py kiosk_link`` (the raw secret is shown once, there)."""

    list_display = ("name", "created_at", "last_seen_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("name",)
    readonly_fields = ("name", "created_at", "last_seen_at")
    fields = ("name", "created_at", "last_seen_at", "revoked_at")
    actions = ("revoke",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Revoke the selected display tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[DisplayToken]) -> None:
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {count} display token(s).", messages.SUCCESS)


@admin.register(TrackedRun)
class TrackedRunAdmin(TrackedRunAdminBase):
    list_display = ("run_id", "source", "status", "lookup", "via", "tracked_at", "finished_at")
    list_filter = ("status", "lookup", "via", "source")
    search_fields = ("run_id",)
    readonly_fields = ("tracked_at", "finished_at", "final_fetch_done")
