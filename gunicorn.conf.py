"""gunicorn reads ./gunicorn.conf.py from its working directory (the repository, under `make up` and in the
image): the API's gunicorn settings live in api/gunicorn_conf.py."""

# gunicorn's settings and server hooks
from api.gunicorn_conf import (child_exit, on_starting, post_worker_init, threads, worker_class,  # noqa: F401
                               workers)
