"""The poller: Celery tasks that keep fresh snapshots of upstream in Redis within each token's budget."""
