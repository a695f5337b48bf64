"""The admin: tracked runs, acknowledgements, display tokens (list, revoke, see when each wall last polled), notifications."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from dashboard.models import (
    Acknowledgement,
    DisplayToken,
    NotifyDestination,
    NotifyEvent,
    NotifyMessage,
    NotifyRule,
    TrackedRun,
)
from dashboard.notify.delivery import EVENT_KINDS, destination_test
from dashboard.notify.destinations import DestinationInvalid, destination_check, scheme_of, url_display

# ModelAdmin is generic for the type checker only; at runtime it cannot be subscripted.
if TYPE_CHECKING:
    DisplayTokenAdminBase = admin.ModelAdmin[DisplayToken]
    TrackedRunAdminBase = admin.ModelAdmin[TrackedRun]
    AcknowledgementAdminBase = admin.ModelAdmin[Acknowledgement]
else:
    DisplayTokenAdminBase = TrackedRunAdminBase = AcknowledgementAdminBase = admin.ModelAdmin


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


# --- notifications -------------------------------------------------------------------

if TYPE_CHECKING:
    NotifyDestinationAdminBase = admin.ModelAdmin[NotifyDestination]
    NotifyMessageAdminBase = admin.ModelAdmin[NotifyMessage]
    NotifyEventAdminBase = admin.ModelAdmin[NotifyEvent]
    NotifyRuleInlineBase = admin.TabularInline[NotifyRule, NotifyDestination]
    NotifyRuleFormBase = forms.ModelForm[NotifyRule]
    NotifyDestinationFormBase = forms.ModelForm[NotifyDestination]
else:
    NotifyDestinationAdminBase = NotifyMessageAdminBase = NotifyEventAdminBase = admin.ModelAdmin
    NotifyRuleInlineBase = admin.TabularInline
    NotifyRuleFormBase = NotifyDestinationFormBase = forms.ModelForm


class NotifyRuleForm(NotifyRuleFormBase):
    events = forms.MultipleChoiceField(
        choices=EVENT_KINDS, widget=forms.CheckboxSelectMultiple, help_text="Events this rule sends."
    )

    class Meta:
        model = NotifyRule
        fields = ("events", "repos", "sources")


class NotifyRuleInline(NotifyRuleInlineBase):
    model = NotifyRule
    form = NotifyRuleForm
    extra = 0
    verbose_name = "rule (a destination without rules gets every event)"


class NotifyDestinationForm(NotifyDestinationFormBase):
    """The URL is write-only: it holds the destination's secret, so no page shows it again."""

    new_url = forms.CharField(
        label="Apprise URL",
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="e.g. slack://T000/B000/XXXX, mailto://user:pass@smtp.example.com, json://host/path. "
        "Kept secret: leave empty to keep the current one.",
    )

    class Meta:
        model = NotifyDestination
        fields = ("name", "enabled")

    def clean_new_url(self) -> str:
        url = str(self.cleaned_data.get("new_url") or "").strip()
        if self.instance.env_index is not None:
            if url:
                raise forms.ValidationError(
                    "This destination comes from BOARD_NOTIFY_URLS; change its URL there, not here."
                )
            return ""
        if not url and not self.instance.url:
            raise forms.ValidationError("Give the destination an Apprise URL.")
        if url:
            try:
                destination_check(url, label="The URL")
            except DestinationInvalid as exc:
                raise forms.ValidationError(str(exc)) from None
        return url

    def save(self, commit: bool = True) -> NotifyDestination:
        url = self.cleaned_data.get("new_url")
        if url:
            self.instance.url = url
            self.instance.kind = scheme_of(url) or ""
        return super().save(commit=commit)


@admin.register(NotifyDestination)
class NotifyDestinationAdmin(NotifyDestinationAdminBase):
    form = NotifyDestinationForm
    inlines = (NotifyRuleInline,)
    list_display = ("name", "kind", "enabled", "where", "sent", "given_up", "last_problem")
    readonly_fields = ("kind", "where")
    fields = ("name", "enabled", "new_url", "kind", "where")
    actions = ("send_test",)

    @admin.display(description="URL")
    def where(self, obj: NotifyDestination) -> str:
        if obj.env_index is not None:
            return f"BOARD_NOTIFY_URLS entry {obj.env_index + 1}"
        return url_display(obj.url) if obj.url else "(none yet)"

    @admin.display(description="messages sent")
    def sent(self, obj: NotifyDestination) -> int:
        return obj.messages.filter(status=NotifyMessage.Status.SENT).count()

    @admin.display(description="given up")
    def given_up(self, obj: NotifyDestination) -> int:
        return obj.messages.filter(status=NotifyMessage.Status.FAILED).count()

    @admin.display(description="last problem")
    def last_problem(self, obj: NotifyDestination) -> str:
        message = obj.messages.exclude(last_error="").order_by("-created_at").first()
        return message.last_error if message else ""

    @admin.action(description="Send a test notification to the selected destinations")
    def send_test(self, request: HttpRequest, queryset: QuerySet[NotifyDestination]) -> None:
        for destination in queryset:
            ok, sentence = destination_test(destination)
            self.message_user(request, sentence, messages.SUCCESS if ok else messages.ERROR)


@admin.register(NotifyMessage)
class NotifyMessageAdmin(NotifyMessageAdminBase):
    """What was sent where, and why what was not sent was not."""

    list_display = ("created_at", "destination", "status", "attempts", "events", "sent_at", "last_error")
    list_filter = ("status", "destination")
    readonly_fields = (
        "destination",
        "status",
        "attempts",
        "events",
        "created_at",
        "next_attempt_at",
        "sent_at",
        "last_error",
    )
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: NotifyMessage | None = None) -> bool:
        return False

    @admin.display(description="events")
    def events(self, obj: NotifyMessage) -> str:
        kinds = [d.event.kind for d in obj.deliveries.select_related("event")]
        return ", ".join(kinds) if len(kinds) < 4 else f"digest of {len(kinds)}"


@admin.register(NotifyEvent)
class NotifyEventAdmin(NotifyEventAdminBase):
    list_display = ("created_at", "kind", "subject", "repo", "source", "open")
    list_filter = ("kind", "open")
    readonly_fields = ("key", "kind", "subject", "repo", "source", "open", "created_at", "facts")
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: NotifyEvent | None = None) -> bool:
        return False


@admin.register(Acknowledgement)
class AcknowledgementAdmin(AcknowledgementAdminBase):
    """Who has seen which problem. Deleting one un-acknowledges it: it returns to the lane."""

    list_display = ("target", "target_id", "problem", "username", "acknowledged_at", "note")
    list_filter = ("target", "problem", "username")
    search_fields = ("target_id", "username", "note")
    readonly_fields = ("target", "target_id", "problem", "user", "username", "acknowledged_at")
    fields = ("target", "target_id", "problem", "user", "username", "acknowledged_at", "note")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
