"""gunicorn's settings for the `web` process (the Procfile's), read from the environment.

gthread workers: the threads of a process share its intake's commits (webhook/batcher.py).
"""
import gc
import os

worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
threads = int(os.environ.get("WEB_THREADS", "16"))
bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
accesslog = os.environ.get("WEB_ACCESS_LOG", "-") or None  # empty: no access log


def post_worker_init(worker):
    """Move everything the app was built from out of the garbage collector's sight.

    Those objects live as long as the worker, yet every full collection walked them all: about
    120,000 objects, a 60 ms pause in the middle of requests, several times a minute under load.
    Frozen, a full collection walks only what requests create.
    """
    gc.freeze()
    worker.log.info("%d objects frozen out of the garbage collector's sight", gc.get_freeze_count())
