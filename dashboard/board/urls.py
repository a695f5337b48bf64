"""URLs of the board pages (included at the site root)."""

from django.urls import path

from dashboard.board import push, views
from dashboard.history import views as history_views

urlpatterns = [
    path("", views.overview, name="overview"),
    path("track/", views.track_run, name="track-run"),
    path("runs/<uuid:run_id>/", views.run_detail, name="run-detail"),
    path("runs/<uuid:run_id>/acknowledge/", views.run_acknowledge, name="run-acknowledge"),
    path("runs/<uuid:run_id>/unacknowledge/", views.run_unacknowledge, name="run-unacknowledge"),
    path("repos/", views.repos, name="repos"),
    path("automations/", views.automations, name="automations"),
    path("job-runs/<uuid:job_run_id>/acknowledge/", views.job_run_acknowledge, name="job-run-acknowledge"),
    path(
        "job-runs/<uuid:job_run_id>/unacknowledge/", views.job_run_unacknowledge, name="job-run-unacknowledge"
    ),
    path("sandboxes/<uuid:sandbox_id>/", views.sandbox_detail, name="sandbox-detail"),
    path("sandboxes/<uuid:sandbox_id>/logs/", views.sandbox_logs, name="sandbox-logs"),
    path("sandboxes/<uuid:sandbox_id>/acknowledge/", views.sandbox_acknowledge, name="sandbox-acknowledge"),
    path(
        "sandboxes/<uuid:sandbox_id>/unacknowledge/",
        views.sandbox_unacknowledge,
        name="sandbox-unacknowledge",
    ),
    path("api/board.json", views.board_json, name="board-json"),
    path("history/", history_views.history, name="history"),
    path("trends/", history_views.trends, name="trends"),
    path("history/export.csv", history_views.history_export_csv, name="history-csv"),
    path("history/export.json", history_views.history_export_json, name="history-json"),
    path("kiosk/<str:token>/", views.kiosk, name="kiosk"),
    # Served by dashboard.asgi's change stream; reached here only under WSGI, which cannot hold it open.
    path("stream/", push.unavailable, name="board-stream"),
    path("kiosk/<str:token>/stream/", push.unavailable, name="kiosk-stream"),
]
