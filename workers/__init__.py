"""The Celery workers: the app (``workers.app``) and its tasks (``workers.tasks``)."""
