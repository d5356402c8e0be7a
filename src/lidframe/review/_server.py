"""The listening page's web application: one page, a small JSON API over :class:`Reviews`, and the
rows' audio.

Why Starlette: a small, maintained ASGI framework (the one FastAPI is built on) with exactly the
parts this needs and nothing to configure: routing with typed path parameters, a streaming
response for byte ranges, cookies; it runs under uvicorn in a thread, so a notebook keeps its
kernel. No template engine, no ORM, no build step: the page is three static files shipped in the
package (``page/``), and every state change is a call of the review loop, which commits to the
job database before the request returns; the server holds no answer.

Routes (every one behind the token, see :class:`TokenGate`):

* ``GET /``: the page. The URL lidframe prints carries ``?token=``: it is exchanged for an
  HttpOnly, SameSite=Strict cookie and the browser is sent to ``/`` without it (so the token is
  not left in the address bar or the history). ``?reviewer=NAME`` sets who is reviewing in
  this browser (default: the server's reviewer).
* ``GET /page/app.js``, ``GET /page/app.css``: the page's script and style (a fixed table).
* ``GET /api/state``: the row the reviewer holds (or the next free one, leased), what the models
  said, progress and pace, and the row that probably comes next (its audio is loaded early).
* ``POST /api/answer`` ``{row, verdict, label}``: committed, then the next state.
* ``POST /api/undo``: the reviewer's last answer withdrawn and its row back, then the state.
* ``GET /api/languages``: every canonical language, code and name, for the type-ahead.
* ``GET /api/audio/{row}``: the file the job database names for that row of this job, with
  range requests (:mod:`lidframe.review._media`), as stored, or decoded to WAV when the browser
  cannot play its format (G.722, AMR); a row outside the job's queues is 404. Nothing of the
  request but the row number reaches the lookup, and nothing of it a file system.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.resources
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from lidframe.errors import AudioError, ConfigError, LidframeError
from lidframe.languages import NO_LANGUAGE, canonical
from lidframe.review._media import (
    AudioFile,
    DecodedAudio,
    RangeNotSatisfiable,
    open_audio,
    parse_range,
    playable,
    transcoded,
)
from lidframe.review._session import Item, Reviews, check_reviewer
from lidframe.store.reviews import ItemLost, RowAudio

__all__ = ["PageSettings", "TokenGate", "item_json", "language_names", "review_app"]

# Keys 1-9: at most this many languages on screen.
_ON_SCREEN = 9


@dataclass(frozen=True)
class PageSettings:
    """What one page server serves."""

    token: str  # the access token every request must carry
    reviewer: str  # who reviews in a browser that did not say (?reviewer=)
    queue: str | None  # the queue served (None: every queue of the job, by name)
    storage_options: Mapping[str, Any] | None = None  # fsspec options for the rows' audio
    io_timeout: float = 30.0  # seconds to connect to remote storage and for each read

    @property
    def cookie(self) -> str:
        """This server's cookie names' stem: cookies ignore ports, so two servers on one host
        (two reviewers, two jobs) each keep their own."""
        return "lidframe_" + hashlib.sha256(self.token.encode()).hexdigest()[:12]


class TokenGate:
    """Refuses (403) every HTTP request that does not carry the token: as ``?token=``, as the
    ``X-Lidframe-Token`` header, or in this server's cookie; compared in constant time."""

    def __init__(self, app: ASGIApp, token: str, cookie: str) -> None:
        self.app = app
        self.token = token.encode()
        self.cookie = cookie

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request = Request(scope)
            given = (
                request.query_params.get("token")
                or request.headers.get("x-lidframe-token")
                or request.cookies.get(self.cookie)
                or ""
            )
            if not hmac.compare_digest(given.encode(), self.token):
                refused = PlainTextResponse(
                    "403 forbidden: open the review page with the URL lidframe printed "
                    "(it carries the access token)\n",
                    status_code=403,
                )
                await refused(scope, receive, send)
                return
        await self.app(scope, receive, send)


@lru_cache(maxsize=1)
def language_names() -> tuple[tuple[str, str], ...]:
    """Every canonical language code with its English name, from the IANA language subtag registry
    that ``langcodes`` ships (deprecated codes, collections and special codes left out), by code."""
    from langcodes.registry_parser import parse_registry

    found: dict[str, str] = {}
    for entry in parse_registry():
        code = entry.get("Subtag", "")
        if (
            entry.get("Type") != "language"
            or "Deprecated" in entry
            or entry.get("Scope") in ("collection", "special", "private-use")
            or ".." in code
        ):
            continue
        try:
            if canonical(code) != code:
                continue
        except ConfigError:
            continue
        found[code] = str(entry["Description"][0])
    return tuple(sorted(found.items()))


def _window(item: Item) -> tuple[float, float | None]:
    """Where the player starts and stops: the row's ``offset`` (and ``duration``), else the first
    window a model heard of a long file, else the file's start."""
    if item.offset is not None:
        end = None if item.duration is None else item.offset + item.duration
        return item.offset, end
    for model in item.models:
        if model.windows:
            first = model.windows[0]
            return float(first.get("start") or 0.0), _float(first.get("end"))
    return 0.0, item.duration


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def item_json(item: Item) -> dict[str, Any]:
    """What the page shows of a row: the models' top 3, the consensus, the windows, and the
    languages the keys 1-9 answer (most probable first, at most nine, no ``und``: key n)."""
    start, end = _window(item)
    best: dict[str, float] = {}

    def consider(lang: str | None, prob: float | None) -> None:
        if lang and lang != NO_LANGUAGE:
            best[lang] = max(best.get(lang, 0.0), prob or 0.0)

    if item.consensus is not None:
        consider(item.consensus[0], item.consensus[1])
    for model in item.models:
        consider(model.lang, model.prob)
        for lang, prob in model.top3:
            consider(lang, prob)
    choices = sorted(best, key=lambda lang: -best[lang])[:_ON_SCREEN]
    windows = [
        {
            "model": model.model,
            "start": _float(w.get("start")),
            "end": _float(w.get("end")),
            "lang": w.get("lang"),
            "prob": _float(w.get("prob")),
        }
        for model in item.models
        for w in model.windows
    ]
    consensus = None
    if item.consensus is not None:
        agreed, support, margin = item.consensus
        consensus = {"lang": agreed, "prob": support, "margin": margin}
    return {
        "row": item.row,
        "id": item.id,
        "audio": item.audio,
        "audio_url": f"/api/audio/{item.row}",
        "start": start,
        "end": end,
        "queue": item.queue,
        "second": item.second,
        "models": [
            {
                "model": m.model,
                "lang": m.lang,
                "prob": m.prob,
                "top3": [[lang, prob] for lang, prob in m.top3],
            }
            for m in item.models
        ],
        "consensus": consensus,
        "speech_seconds": item.speech_seconds,
        "code_switch": item.code_switch,
        "windows": windows,
        "choices": choices,
    }


def _page_file(name: str) -> bytes:
    return importlib.resources.files("lidframe.review").joinpath("page", name).read_bytes()


def review_app(reviews: Reviews, settings: PageSettings) -> ASGIApp:
    """The page's ASGI application over ``reviews`` (see the module docstring)."""
    reads = reviews.store
    job_id = reviews.job_id
    queues: Sequence[str] | None = None if settings.queue is None else [settings.queue]
    files = {
        "app.js": (_page_file("app.js"), "text/javascript; charset=utf-8"),
        "app.css": (_page_file("app.css"), "text/css; charset=utf-8"),
    }
    index = _page_file("index.html")
    reviewer_cookie = settings.cookie + "_reviewer"
    cookie_options: dict[str, Any] = {"httponly": True, "samesite": "strict", "path": "/"}

    def reviewer_of(request: Request) -> str:
        return check_reviewer(request.cookies.get(reviewer_cookie) or settings.reviewer)

    def state(reviewer: str, message: str | None = None) -> dict[str, Any]:
        item = reviews.next(reviewer, settings.queue)
        progress = reviews.progress(reviewer, settings.queue)
        served = queues if queues is not None else reviews.queues()
        upcoming = reads.upcoming(job_id, served, None if item is None else item.row)
        return {
            "job": job_id,
            "reviewer": reviewer,
            "queue": settings.queue,
            "item": None if item is None else item_json(item),
            "progress": {"done": progress.done, "left": progress.left, "pace": progress.pace},
            "upcoming": None if upcoming is None else f"/api/audio/{upcoming}",
            "message": message,
        }

    async def page(request: Request) -> Response:
        given = request.query_params
        if "token" in given or "reviewer" in given:
            # Trade the URL's token (and reviewer) for cookies; show the page without them.
            response: Response = RedirectResponse("/", status_code=303)
            if "token" in given:
                response.set_cookie(settings.cookie, settings.token, **cookie_options)
            if "reviewer" in given:
                try:
                    name = check_reviewer(given["reviewer"])
                except ConfigError as exc:
                    return PlainTextResponse(f"400 bad request: {exc}\n", status_code=400)
                response.set_cookie(reviewer_cookie, name, **cookie_options)
            return response
        return HTMLResponse(index, headers={"Cache-Control": "no-store"})

    async def static(request: Request) -> Response:
        found = files.get(request.path_params["name"])
        if found is None:
            return PlainTextResponse("404 not found\n", status_code=404)
        body, media_type = found
        return Response(body, media_type=media_type, headers={"Cache-Control": "no-cache"})

    async def get_state(request: Request) -> Response:
        return await _json(lambda: state(reviewer_of(request)))

    async def post_answer(request: Request) -> Response:
        try:
            body = await request.json()
            row = int(body["row"])
            verdict = str(body["verdict"])
            label = body.get("label")
            label = None if label in (None, "") else str(label)
        except (ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
            return JSONResponse({"error": f"bad answer: {exc}"}, status_code=400)

        def answer() -> dict[str, Any]:
            reviewer = reviewer_of(request)
            try:
                reviews.answer(reviewer, row, verdict, label)
            except ItemLost as exc:
                return state(reviewer, message=str(exc))
            return state(reviewer)

        return await _json(answer)

    async def post_undo(request: Request) -> Response:
        def undo() -> dict[str, Any]:
            reviewer = reviewer_of(request)
            undone = reviews.undo(reviewer)
            return state(reviewer, message=None if undone is not None else "nothing to undo")

        return await _json(undo)

    async def get_languages(request: Request) -> Response:
        names = await run_in_threadpool(language_names)
        return JSONResponse(names, headers={"Cache-Control": "private, max-age=86400"})

    @lru_cache(maxsize=4)
    def decoded(found: RowAudio) -> DecodedAudio:
        """A row's file the browser cannot play, decoded once for the range requests that
        follow (the player asks for several)."""
        end = None
        if found.duration is not None:
            end = (found.offset or 0.0) + found.duration
        return transcoded(found.audio, end, settings.storage_options, settings.io_timeout)

    async def get_audio(request: Request) -> Response:
        row = request.path_params["row"]
        try:
            found = await run_in_threadpool(reads.row_audio, job_id, row)
        except LidframeError as exc:
            return PlainTextResponse(f"503 job database: {exc}\n", status_code=503)
        if found is None:
            return PlainTextResponse("404 no such row in this job's review queues\n", 404)
        audio: AudioFile | DecodedAudio
        try:
            if playable(found.audio):
                audio = await run_in_threadpool(
                    open_audio, found.audio, settings.storage_options, settings.io_timeout
                )
            else:
                audio = await run_in_threadpool(decoded, found)
        except FileNotFoundError:
            return PlainTextResponse(f"404 {found.audio}: no such file\n", status_code=404)
        except AudioError as exc:
            status = 404 if exc.category == "not_found" else 502
            return PlainTextResponse(f"{status} {exc}\n", status_code=status)
        except Exception as exc:  # noqa: BLE001 - any store failure is the store's answer
            return PlainTextResponse(
                f"502 {found.audio}: {type(exc).__name__}: {exc}\n", status_code=502
            )
        headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, max-age=600"}
        try:
            span = parse_range(request.headers.get("range"), audio.size)
        except RangeNotSatisfiable:
            headers["Content-Range"] = f"bytes */{audio.size}"
            return Response(status_code=416, headers=headers)
        headers["Content-Length"] = str(span.length)
        if span.partial:
            headers["Content-Range"] = f"bytes {span.start}-{span.stop - 1}/{audio.size}"
        status = 206 if span.partial else 200
        if request.method == "HEAD":
            return Response(status_code=status, headers=headers, media_type=audio.content_type)
        return StreamingResponse(
            audio.chunks(span), status_code=status, headers=headers, media_type=audio.content_type
        )

    app = Starlette(
        routes=[
            Route("/", page, methods=["GET"]),
            Route("/page/{name}", static, methods=["GET"]),
            Route("/api/state", get_state, methods=["GET"]),
            Route("/api/answer", post_answer, methods=["POST"]),
            Route("/api/undo", post_undo, methods=["POST"]),
            Route("/api/languages", get_languages, methods=["GET"]),
            Route("/api/audio/{row:int}", get_audio, methods=["GET", "HEAD"]),
        ]
    )
    return TokenGate(app, settings.token, settings.cookie)


async def _json(work: Any) -> Response:
    """``work()`` in a thread (the job database blocks), as JSON; a bad request is 400, a lost
    job database 503."""
    try:
        return JSONResponse(await run_in_threadpool(work), headers={"Cache-Control": "no-store"})
    except ConfigError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    except LidframeError as exc:
        return JSONResponse({"error": str(exc)}, status_code=503)
