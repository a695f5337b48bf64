from django.contrib import admin
from django.urls import include, path

from dashboard import ingest, ops

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", ops.healthz, name="healthz"),
    path("readyz", ops.readyz, name="readyz"),
    path("metrics", ops.metrics, name="metrics"),
    path("ingest/runs", ingest.runs_ingest, name="ingest-runs"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("dashboard.board.urls")),
]
