from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

from dashboard import ingest, ops
from dashboard.signin import SignInView
from dashboard.sso import flow as sso

urlpatterns = [
    # One sign-in page, rate limited, for the board and the admin alike.
    path("admin/login/", RedirectView.as_view(pattern_name="login", query_string=True)),
    path("admin/", admin.site.urls),
    path("healthz", ops.healthz, name="healthz"),
    path("readyz", ops.readyz, name="readyz"),
    path("metrics", ops.metrics, name="metrics"),
    path("ingest/runs", ingest.runs_ingest, name="ingest-runs"),
    path("accounts/login/", SignInView.as_view(), name="login"),
    # allauth's flows send people to its sign-in page by this name: it is the board's.
    path("accounts/login/", SignInView.as_view(), name="account_login"),
    path("accounts/inactive/", sso.account_inactive, name="account_inactive"),
    path("accounts/oidc/<str:provider_id>/login/", sso.sso_login, name="openid_connect_login"),
    path("accounts/", include("allauth.socialaccount.providers.openid_connect.urls")),
    path("accounts/3rdparty/", include("allauth.socialaccount.urls")),
    # No password reset by mail: the board sends no mail. An operator sets a forgotten
    # password in the admin or with `manage.py changepassword`.
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/password_change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path(
        "accounts/password_change/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("", include("dashboard.board.urls")),
]

handler404 = "dashboard.board.views.page_not_found"
