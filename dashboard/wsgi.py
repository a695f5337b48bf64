"""WSGI entry point (gunicorn ``dashboard.wsgi``)."""

import os
import sys

from dashboard.env import ConfigurationError

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")

try:
    from django.core.wsgi import get_wsgi_application

    application = get_wsgi_application()
except ConfigurationError as exc:
    sys.exit(f"Configuration error: {exc}")
