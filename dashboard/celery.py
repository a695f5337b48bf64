"""The Celery app: configured from Django settings under the ``CELERY`` namespace."""

import os
import warnings

from celery import Celery
from celery.exceptions import SecurityWarning
from kombu.transport import TRANSPORT_ALIASES

from dashboard.polling.broker import TRANSPORT

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")

# A worker started as root (``make run`` on a machine where you are root, CI) warns that
# this is "absolutely not recommended": a root worker that accepts pickle runs whatever
# a message asks for. This one accepts JSON only (CELERY_ACCEPT_CONTENT), which is the
# case Celery itself lets through with a warning; the image runs as the unprivileged
# user ``board``. Celery would refuse to start on pickle as root; that stays.
warnings.filterwarnings(
    "ignore", message="You're running the worker with superuser", category=SecurityWarning
)

# redis:// and rediss:// broker URLs use the board's Redis transport (see dashboard.polling.broker).
TRANSPORT_ALIASES["redis"] = TRANSPORT_ALIASES["rediss"] = TRANSPORT

app = Celery("dashboard")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["dashboard.polling", "dashboard.notify"])
