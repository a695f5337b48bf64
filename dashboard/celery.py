"""The Celery app: configured from Django settings under the ``CELERY`` namespace."""

import os

from celery import Celery
from kombu.transport import TRANSPORT_ALIASES

from dashboard.polling.broker import TRANSPORT

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")

# redis:// and rediss:// broker URLs use the board's Redis transport (see dashboard.polling.broker).
TRANSPORT_ALIASES["redis"] = TRANSPORT_ALIASES["rediss"] = TRANSPORT

app = Celery("dashboard")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["dashboard.polling", "dashboard.notify"])
