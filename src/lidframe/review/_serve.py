"""Starting and stopping the listening page: ``lidframe review RESULTS`` and ``lidframe.review(...)``.

The server binds 127.0.0.1 on a port the OS picks (the socket is bound here and handed to uvicorn,
so no other process can take the port in between) and answers only requests that carry a random
token (``secrets.token_urlsafe``), which the one URL it prints carries. Binding any other address
takes ``host=`` (``--host``) and warns: the page then reaches whoever can reach that address and
has the URL. uvicorn runs in a daemon thread, so a notebook keeps its kernel and ``.stop()``
ends it; the command waits on it until Ctrl-C.
"""

from __future__ import annotations

import getpass
import ipaddress
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lidframe.errors import ConfigError, LidframeError
from lidframe.review._session import Reviews, check_reviewer

if TYPE_CHECKING:
    from lidframe.review._server import PageSettings

__all__ = ["ReviewServer", "review", "serve"]

log = logging.getLogger(__name__)


class ReviewServer:
    """A running listening page: :attr:`url` (with its token), :meth:`stop`, :meth:`wait`."""

    def __init__(
        self, reviews: Reviews, settings: PageSettings, host: str, port: int, owned: bool
    ) -> None:
        import uvicorn

        from lidframe.review._server import review_app

        self.reviews = reviews
        self.settings = settings
        self.job_id = reviews.job_id
        self.reviewer = settings.reviewer
        self._owned = owned
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            self._socket = socket.create_server((host, port), family=family)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host} port {port}: {exc}") from exc
        self.host = host
        self.port = int(self._socket.getsockname()[1])
        shown = socket.gethostname() if _unspecified(host) else host
        shown = f"[{shown}]" if ":" in shown else shown
        self.url = f"http://{shown}:{self.port}/?token={settings.token}"
        config = uvicorn.Config(
            review_app(reviews, settings),
            log_level="warning",
            access_log=False,  # the first request's URL carries the token
            lifespan="off",
            # a player's open stream must not hold a stop up: answers are committed already
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name=f"lidframe-review-{self.port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise LidframeError(f"the review page did not start on {host} port {self.port}")
            time.sleep(0.01)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        """Stop serving (answers are in the job database already; the row a reviewer holds goes
        back to its queue when its lease ends)."""
        self._server.should_exit = True
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        self._socket.close()
        if self._owned:
            self.reviews.close()

    def wait(self) -> None:
        """Block until the server stops (Ctrl-C stops it)."""
        try:
            while self._thread.is_alive():
                self._thread.join(timeout=0.5)
        finally:
            self.stop()

    def __enter__(self) -> ReviewServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "serving" if self.running else "stopped"
        return f"<ReviewServer {state} job {self.job_id} for {self.reviewer}: {self.url}>"

    def _repr_html_(self) -> str:
        import html

        state = "serving" if self.running else "stopped"
        url = html.escape(self.url, quote=True)
        return (
            f"Review page ({state}, job {html.escape(self.job_id)}, reviewer "
            f'{html.escape(self.reviewer)}): <a href="{url}" target="_blank">{url}</a>'
        )


def serve(
    results: str | os.PathLike[str] | Reviews,
    *,
    reviewer: str | None = None,
    queue: str | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    db: str | None = None,
    job: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    io_timeout: float = 30.0,
    lease_s: float = 120.0,
    quiet: bool = False,
) -> ReviewServer:
    """Serve the listening page for the job that wrote ``results`` (a results folder, found in its
    job database as ``lidframe status`` finds it: ``db``, else ``$LIDFRAME_DB``, else the folder's
    own; ``job`` picks one) or for a :class:`Reviews`; prints the page's URL (unless ``quiet``)
    and returns the running :class:`ReviewServer`.

    ``reviewer``: who reviews (default: the login name; a browser may say ``?reviewer=NAME``);
    ``queue``: one queue of the job (default: all, by name); ``host``: 127.0.0.1 unless given
    (another address warns); ``port``: 0 for a free one; ``storage_options``: fsspec options
    for the rows' audio (the job database does not keep credentials); ``lease_s``: how long a
    reviewer holds a row before anyone else may take it.
    """
    _require_web()
    from lidframe.review._server import PageSettings

    name = check_reviewer(reviewer if reviewer is not None else _login())
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be 0 (a free one) to 65535, got {port}")
    if not _loopback(host):
        log.warning(
            "the review page listens on %s, not only on this machine: anyone who can reach that "
            "address and has the URL (its token) can listen to the job's audio and answer",
            host,
        )
    owned = not isinstance(results, Reviews)
    if isinstance(results, Reviews):
        reviews = results
    else:
        reviews = Reviews.for_results(results, db=db, job=job, lease_s=lease_s)
    try:
        known = reviews.queues()
        if not known:
            raise ConfigError(
                f"job {reviews.job_id} has no review queue yet: build one with "
                "`lidframe review queue RESULTS --queue random` (or another kind)"
            )
        if queue is not None and queue not in known:
            raise ConfigError(
                f"no review queue {queue!r} in job {reviews.job_id} (queues: {', '.join(known)})"
            )
        settings = PageSettings(
            token=secrets.token_urlsafe(32),
            reviewer=name,
            queue=queue,
            storage_options=storage_options,
            io_timeout=io_timeout,
        )
        server = ReviewServer(reviews, settings, host, port, owned)
    except BaseException:
        if owned:
            reviews.close()
        raise
    if not quiet:
        print(
            f"lidframe review: job {reviews.job_id}, {queue or 'every queue'}, reviewer {name}: "
            f"{server.url}",
            flush=True,
        )
    return server


# ``lidframe.review(...)``: the notebook's name for :func:`serve`.
review = serve


def _require_web() -> None:
    """The page's web framework is an extra: say how to install it."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            f"the review page needs Starlette and uvicorn ({exc}): pip install 'lidframe[review]'"
        ) from exc


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "reviewer"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _unspecified(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False
