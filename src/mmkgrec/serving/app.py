"""The FastAPI app of ``mmkgrec serve``: a loaded run behind a versioned JSON API, a page, metrics.

Endpoints (every id is a query parameter, so any raw id works; every error is JSON
``{"error": "...", ...}`` with a 4xx status, never a traceback):

==========================  =====================================================================
``GET /v1/recommend``       ``user``, ``k`` (1..1000), ``exclude_seen``: the top-k with titles
``POST /v1/recommend/batch``  ``{"users": [...], "k": 10, "exclude_seen": true}`` (at most 1,000)
``GET /v1/similar``         ``item``, ``k``: nearest items by the model's item vectors
``GET /v1/explain``         ``user``, ``item``, ``backend`` (``template``): ``Run.explain``
``GET /v1/item``            ``item``: id, title, attributes, whether it has a poster
``GET /v1/poster``          ``item``: its image from the poster folder, else a placeholder
``GET /v1/history``         ``user``, ``limit``: the user's interactions, latest first
``GET /v1/users``           ``prefix``, ``limit``: user ids starting with ``prefix`` (the page's search)
``POST /v1/feedback``       ``{"user", "item", "event", "value"?, "timestamp"?}``: appended and
                            fsync-ed to ``--feedback FILE`` before the 201
``POST /v1/admin/reload``   ``{"run_dir"?}``: load a run and swap it in (API key required)
``GET /health``, ``/metrics``  liveness and the loaded run; Prometheus text format
``GET /docs``, ``/openapi.json``  the OpenAPI page and schema
``GET /``                   the web page (``static/``)
==========================  =====================================================================

Safe defaults: request bodies are limited (``max_body`` bytes, 64 KiB by default, 413 beyond),
CORS is off unless origins are given, the API key is read from an environment variable
(``MMKGREC_API_KEY``) and compared in constant time; admin endpoints are refused while it is
unset, and ``protect_all`` puts every ``/v1`` endpoint behind it too.

Reload without dropping requests: a request takes the run that is current when it starts and
finishes on it; the reload loads the new run beside the old one and swaps a reference. With
several workers (processes), the worker that receives the reload writes the new generation to a
control file that every worker checks (one ``stat``) at each request; the others load it in a
background thread and keep answering from the old run until it is ready.
"""

from __future__ import annotations

import contextlib
import fcntl
import hmac
import json
import logging
import os
import threading
import time
import uuid
from importlib import resources
from pathlib import Path
from typing import Annotated, Optional

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import MMKGRecError
from ..runs import RunFileError, UnknownIdError
from .catalog import MEDIA_TYPES, Catalog
from .feedback import FeedbackLog

log = logging.getLogger("mmkgrec.serve")

MAX_K = 1000
MAX_BATCH = 1000
MAX_HISTORY = 1000
DEFAULT_MAX_BODY = 64 * 1024
API_KEY_ENV = "MMKGREC_API_KEY"
SERVE_ENV = "MMKGREC_SERVE"  # the settings a worker process reads (app_from_env)
STATIC = "static"


class ApiError(Exception):
    """An error answered as ``status`` with JSON ``{"error": message, **extra}``."""

    def __init__(self, status: int, message: str, **extra):
        super().__init__(message)
        self.status, self.message, self.extra = status, message, extra


# ---- the loaded run and its reload ---------------------------------------------------------
class Loaded:
    """One loaded run, warmed up (evaluation caches, similarity index), with its catalogue."""

    def __init__(self, run_dir: str | Path, images=None, device: str | None = None,
                 generation: int = 0):
        from .. import api

        t0 = time.perf_counter()
        self.run_dir = str(Path(run_dir).resolve())
        self.run = api.load(run_dir, device)
        self.catalog = Catalog(self.run, images)
        self.run._prepare()
        try:
            self.run.similarity_index()
        except MMKGRecError:  # a model without item vectors: /v1/similar says so
            pass
        self.run.explainer()  # the evidence tables, built once, before the first request
        m = self.run.data.manifest if self.run.data is not None else {}
        self.run_id = m.get("run_id")
        self.model, self.dataset = str(self.run.config["model"]), str(self.run.config["dataset"])
        self.generation = generation
        self.loaded_at = time.time()
        self.load_s = time.perf_counter() - t0

    def _dense(self, raw: str, kind: str) -> int:
        """The dense id of a raw ``kind`` id; a 404 naming it when the run does not know it."""
        try:
            return self.run.user_index(raw) if kind == "user" else self.run.item_index(raw)
        except UnknownIdError:
            raise ApiError(404, f"unknown {kind} id '{raw}': the run ({self.model} on "
                           f"'{self.dataset}') does not know it", id=raw, kind=kind) from None

    def user(self, raw: str) -> int:
        return self._dense(raw, "user")

    def item(self, raw: str) -> int:
        return self._dense(raw, "item")

    def entries(self, pairs) -> list[dict]:
        cat = self.catalog
        out = []
        for raw, score in pairs:
            i = self.run.item_index(raw)
            out.append({"item": raw, "score": score, "title": cat.title(i),
                        "has_poster": raw in cat.posters})
        return out


class RunHolder:
    """The current :class:`Loaded` run; ``control``: the file that carries reloads to every
    worker (``None``: this process alone)."""

    def __init__(self, loaded: Loaded, loader, control: str | Path | None = None):
        self.current = loaded
        self._loader = loader
        self.control = Path(control) if control else None
        self._seen = None
        self._lock = threading.Lock()
        self._loading = False
        self.last_error: str | None = None
        if self.control is not None and self.control.exists():
            self._seen = self.control.stat().st_mtime_ns
            info = self._read_control()
            if info and int(info.get("generation", 0)) > loaded.generation \
                    and info.get("run_dir") == loaded.run_dir:
                loaded.generation = int(info["generation"])

    def get(self) -> Loaded:
        if self.control is not None:
            self._poll()
        return self.current

    def _read_control(self) -> dict | None:
        try:
            return json.loads(self.control.read_text())
        except (OSError, ValueError):
            return None

    def _poll(self) -> None:
        try:
            mtime = self.control.stat().st_mtime_ns
        except OSError:
            return
        if mtime == self._seen:
            return
        with self._lock:
            if mtime == self._seen or self._loading:
                return
            self._seen = mtime
            info = self._read_control()
            if not info or int(info.get("generation", 0)) <= self.current.generation:
                return
            self._loading = True
        threading.Thread(target=self._load_in_background, args=(info,), daemon=True).start()

    def _load_in_background(self, info: dict) -> None:
        try:
            new = self._loader(info["run_dir"], int(info["generation"]))
            with self._lock:
                if new.generation > self.current.generation:
                    self.current = new
            log.info("worker %d now serves %s (generation %d)", os.getpid(), new.run_dir,
                     new.generation)
        except Exception as e:  # keep serving the old run; /health shows the error
            self.last_error = f"{type(e).__name__}: {e}"
            log.error("worker %d could not load %s: %s", os.getpid(), info.get("run_dir"), e)
        finally:
            with self._lock:
                self._loading = False

    def reload(self, run_dir: str | Path) -> Loaded:
        """Load ``run_dir`` here, swap it in, then tell the other workers."""
        lock_fd = None
        if self.control is not None:
            lock_fd = os.open(str(self.control) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
        try:
            info = self._read_control() if self.control is not None else None
            generation = max(self.current.generation,
                             int(info.get("generation", 0)) if info else 0) + 1
            new = self._loader(run_dir, generation)
            with self._lock:
                self.current = new
                self.last_error = None
            if self.control is not None:
                tmp = self.control.with_name(self.control.name + f".tmp{os.getpid()}")
                tmp.write_text(json.dumps({"generation": generation, "run_dir": new.run_dir}))
                os.replace(tmp, self.control)
                with self._lock:
                    self._seen = self.control.stat().st_mtime_ns
            return new
        finally:
            if lock_fd is not None:
                fcntl.flock(lock_fd, fcntl.LOCK_UN)
                os.close(lock_fd)


# ---- metrics -------------------------------------------------------------------------------
_METRICS: dict = {}


def _metrics() -> dict:
    """The Prometheus metrics (created once per process; multiprocess mode when
    ``PROMETHEUS_MULTIPROC_DIR`` is set, as ``mmkgrec serve --workers N`` does)."""
    if not _METRICS:
        from prometheus_client import Counter, Gauge, Histogram

        _METRICS["requests"] = Counter("mmkgrec_requests", "HTTP requests answered",
                                       ["route", "method", "status"])
        _METRICS["latency"] = Histogram(
            "mmkgrec_request_duration_seconds", "Time to answer a request", ["route"],
            buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
        _METRICS["feedback"] = Counter("mmkgrec_feedback_events", "Feedback events written")
        _METRICS["generation"] = Gauge("mmkgrec_run_generation", "Reloads applied to the "
                                       "served run", multiprocess_mode="max")
    return _METRICS


def metrics_text() -> tuple[bytes, str]:
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return generate_latest(registry), CONTENT_TYPE_LATEST


def _error(status: int, message: str, headers: dict | None = None, **extra) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


class Guard:
    """ASGI middleware: refuses bodies over ``max_body`` bytes (413, before the app reads
    them) and counts and times every request by its route template."""

    def __init__(self, app, max_body: int):
        self.app, self.max_body = app, max_body
        self.m = _metrics()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = [500]

        async def send_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            early = None
            length = dict(scope["headers"]).get(b"content-length")
            if length is not None:
                try:
                    if int(length) > self.max_body:
                        early = _error(413, f"request body of {int(length)} bytes; the limit is "
                                       f"{self.max_body} bytes")
                except ValueError:
                    early = _error(400, "malformed Content-Length header")
            if early is None and scope["method"] in ("POST", "PUT", "PATCH"):
                chunks, size, more = [], 0, True
                while more:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    body = message.get("body", b"")
                    size += len(body)
                    if size > self.max_body:
                        early = _error(413, f"request body over the limit of {self.max_body} "
                                       "bytes")
                        break
                    chunks.append(body)
                    more = message.get("more_body", False)
                if early is None:
                    whole = b"".join(chunks)
                    sent = [False]

                    async def replay():
                        if not sent[0]:
                            sent[0] = True
                            return {"type": "http.request", "body": whole, "more_body": False}
                        return await receive()

                    receive = replay
            if early is not None:
                await early(scope, receive, send_status)
                return
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            name = getattr(route, "path", None) or ("static" if scope["path"].startswith(
                "/static/") else "unmatched")
            self.m["requests"].labels(name, scope["method"], str(status[0])).inc()
            self.m["latency"].labels(name).observe(time.perf_counter() - t0)


# ---- parameters, request and response bodies -----------------------------------------------
K = Annotated[int, Query(ge=1, le=MAX_K, description="how many items")]
UserId = Annotated[str, Query(min_length=1, max_length=512, description="a raw user id")]
ItemId = Annotated[str, Query(min_length=1, max_length=512, description="a raw item id")]


# ---- request and response bodies -----------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BatchRequest(_Strict):
    users: list[StrictStr] = Field(min_length=1, max_length=MAX_BATCH,
                                   description="raw user ids")
    k: StrictInt = Field(10, ge=1, le=MAX_K)
    exclude_seen: StrictBool = True


class FeedbackEvent(_Strict):
    user: StrictStr = Field(min_length=1, max_length=512)
    item: StrictStr = Field(min_length=1, max_length=512)
    event: StrictStr = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$",
                             description="the kind of event: view, click, like, rating, ...")
    value: Optional[StrictFloat | StrictInt] = Field(None, description="e.g. a rating")
    timestamp: Optional[StrictFloat | StrictInt] = Field(None, description="client time, "
                                                         "seconds since the epoch")


class ReloadRequest(_Strict):
    run_dir: Optional[StrictStr] = Field(None, description="a run directory on the server "
                                         "(default: the one served now, reloaded)")


class Entry(BaseModel):
    item: str
    score: float
    title: str
    has_poster: bool


class Recommendations(BaseModel):
    user: str
    k: int
    run_id: Optional[str]
    items: list[Entry]


class BatchRecommendations(BaseModel):
    k: int
    run_id: Optional[str]
    results: list[Recommendations]


class Similar(BaseModel):
    item: str
    k: int
    run_id: Optional[str]
    items: list[Entry]


# ---- the app -------------------------------------------------------------------------------
def _static_file(name: str) -> Path:
    return Path(str(resources.files("mmkgrec.serving") / STATIC / name))


PAGE_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
                "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def create_app(run_dir: str | Path, *, feedback: str | Path | None = None,
               images: str | Path | None = None, device: str | None = None,
               threads: int | None = 1, api_key_env: str = API_KEY_ENV,
               protect_all: bool = False, cors_origins=(), max_body: int = DEFAULT_MAX_BODY,
               control: str | Path | None = None, loaded: Loaded | None = None,
               explain_backends=("template",)) -> FastAPI:
    """The app serving ``run_dir`` (see the module docstring). ``threads``: torch threads per
    process (``None``: leave as is). ``explain_backends``: the ``Run.explain`` backends a
    request may ask for (``transformers`` loads a language model, ``http`` calls the configured
    endpoint: both off unless named). A missing or incomplete run, a poster folder that is not
    one, or a feedback file inside the run directory raise MMKGRecError before anything
    serves."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    explain_backends = tuple(explain_backends)

    def loader(path, generation):
        if not Path(path).is_dir():
            raise RunFileError(path, "not a run directory (no such folder)")
        return Loaded(path, images, device, generation)

    loaded = loaded or loader(run_dir, 0)
    holder = RunHolder(loaded, loader, control)
    events = FeedbackLog(feedback, forbidden=loaded.run_dir) if feedback else None
    m = _metrics()
    m["generation"].set(loaded.generation)

    def api_key() -> bytes | None:
        key = os.environ.get(api_key_env)
        return key.encode() if key else None

    def check_key(request: Request) -> None:
        key = api_key()
        if key is None:
            raise ApiError(403, f"admin endpoints are disabled: the server was started without "
                           f"an API key (set {api_key_env})")
        given = request.headers.get("x-api-key")
        auth = request.headers.get("authorization", "")
        if given is None and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if given is None:
            raise ApiError(401, "missing API key (header X-API-Key or Authorization: Bearer)",
                           headers={"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), key):
            raise ApiError(401, "wrong API key", headers={"WWW-Authenticate": "Bearer"})

    def guard_all(request: Request) -> None:
        if protect_all:
            check_key(request)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        if events is not None:
            events.close()

    app = FastAPI(title="mmkgrec", version="1", lifespan=lifespan,
                  description="Recommendations, similar items, explanations and feedback of one "
                  "trained mmkgrec run.")
    app.state.holder, app.state.events = holder, events
    app.add_middleware(Guard, max_body=max_body)
    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins),
                           allow_methods=["GET", "POST"], allow_headers=["Content-Type",
                                                                         "X-API-Key"])

    # -- errors: JSON, 4xx, naming what was wrong --------------------------------------------
    @app.exception_handler(ApiError)
    async def _api_error(request, exc: ApiError):
        headers = exc.extra.pop("headers", None)
        return _error(exc.status, exc.message, headers=headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request, exc: RequestValidationError):
        problems = []
        status = 422
        for e in exc.errors():
            where = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
            if e.get("type") == "json_invalid":
                status = 400
                problems.append(f"malformed JSON body ({e.get('ctx', {}).get('error', e['msg'])})")
                continue
            value = e.get("input")
            shown = "" if e.get("type") == "missing" else f" (got {json.dumps(value, default=str)[:80]})"
            problems.append(f"{where}: {e['msg']}{shown}")
        return _error(status, "; ".join(problems) or "invalid request",
                      detail=[{"loc": list(e.get("loc", ())), "msg": e.get("msg"),
                               "type": e.get("type")} for e in exc.errors()])

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, exc: StarletteHTTPException):
        msg = exc.detail if isinstance(exc.detail, str) else "error"
        if exc.status_code == 400 and msg == "There was an error parsing the body":
            msg = "malformed JSON body (not a UTF-8 JSON document)"
        elif exc.status_code == 404 and msg == "Not Found":
            msg = f"no such endpoint: {request.method} {request.url.path}"
        elif exc.status_code == 405:
            msg = f"method {request.method} not allowed on {request.url.path}"
        return _error(exc.status_code, msg, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request, exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, "internal error; the server logged it")

    v1 = [Depends(guard_all)]

    # -- recommendations -----------------------------------------------------------------------
    @app.get("/v1/recommend", response_model=Recommendations, dependencies=v1,
             tags=["recommend"])
    async def recommend(user: UserId, k: K = 10, exclude_seen: bool = True):
        """The top-``k`` items for ``user``; with ``exclude_seen`` (default) the items the user
        interacted with anywhere in the dataset are left out. (Answered on the event loop:
        one user's scoring takes well under a millisecond, less than a hop to a thread.)"""
        cur = holder.get()
        cur.user(user)
        pairs = cur.run.recommend(user, k, exclude_seen)
        return JSONResponse({"user": user, "k": k, "run_id": cur.run_id,
                             "items": cur.entries(pairs)})

    @app.post("/v1/recommend/batch", response_model=BatchRecommendations, dependencies=v1,
              tags=["recommend"])
    def recommend_batch(body: BatchRequest):
        """:code:`/v1/recommend` for up to 1,000 users at once, scored in chunks."""
        cur = holder.get()
        for u in body.users:
            cur.user(u)
        lists = cur.run.recommend_batch(body.users, body.k, body.exclude_seen)
        return JSONResponse({"k": body.k, "run_id": cur.run_id,
                             "results": [{"user": u, "k": body.k, "run_id": cur.run_id,
                                          "items": cur.entries(p)}
                                         for u, p in zip(body.users, lists)]})

    @app.get("/v1/similar", response_model=Similar, dependencies=v1, tags=["items"])
    async def similar(item: ItemId, k: K = 10):
        """The ``k`` items nearest to ``item`` (cosine of the model's item vectors; on the
        event loop, as recommend)."""
        cur = holder.get()
        cur.item(item)
        try:
            pairs = cur.run.similar_items(item, k)
        except UnknownIdError:
            raise
        except MMKGRecError as e:
            raise ApiError(409, str(e)) from None
        return JSONResponse({"item": item, "k": k, "run_id": cur.run_id,
                             "items": cur.entries(pairs)})

    @app.get("/v1/explain", dependencies=v1, tags=["recommend"])
    def explain(user: UserId,
                item: ItemId,
                backend: Annotated[str, Query(pattern=r"^[a-z][a-z0-9_-]{0,31}$")] = "template"):
        """Why ``item`` for ``user``: the run's verified explanation (``Run.explain``): its
        ``text``, each sentence with the triples that support it, and whether a draft was
        corrected. Only the backends the server enabled (default: ``template``)."""
        if backend not in explain_backends:
            raise ApiError(422, f"explanation backend '{backend}' is not enabled on this server "
                           f"(enabled: {', '.join(explain_backends)}; mmkgrec serve "
                           "--explain-backend NAME enables another)", backend=backend)
        cur = holder.get()
        cur.user(user)
        cur.item(item)
        try:
            result = cur.run.explain(user, item, backend=backend)
        except UnknownIdError as e:
            raise ApiError(404, str(e)) from None
        except (MMKGRecError, ValueError) as e:
            raise ApiError(422, str(e), backend=backend) from None
        return {"user": user, "item": item, "backend": backend, "run_id": cur.run_id,
                **explanation_json(result)}

    # -- items and users -------------------------------------------------------------------------
    @app.get("/v1/item", dependencies=v1, tags=["items"])
    def item_meta(item: ItemId):
        """The item's id, title, attributes (the run's item table) and whether it has a
        poster (``/v1/poster``)."""
        cur = holder.get()
        return cur.catalog.item(cur.item(item))

    @app.get("/v1/poster", dependencies=v1, tags=["items"],
             responses={200: {"content": {"image/jpeg": {}, "image/svg+xml": {}}}})
    def poster(item: ItemId):
        """The item's poster from the poster folder, or a placeholder (header
        ``X-Poster: placeholder``). The file is one the folder lists under the item's id;
        no path from the request is ever opened."""
        cur = holder.get()
        cur.item(item)
        path = cur.catalog.poster_path(item)
        cache = {"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"}
        if path is None:
            return FileResponse(_static_file("placeholder.svg"), media_type="image/svg+xml",
                                headers={**cache, "X-Poster": "placeholder"})
        return FileResponse(path, media_type=MEDIA_TYPES[path.suffix.lower()],
                            headers={**cache, "X-Poster": "file"})

    @app.get("/v1/history", dependencies=v1, tags=["users"])
    def history(user: UserId,
                limit: Annotated[int, Query(ge=1, le=MAX_HISTORY)] = 50):
        """The user's interactions in the run's split, latest first (``part``: train, valid or
        test)."""
        cur = holder.get()
        total, rows = cur.catalog.history(cur.user(user), limit)
        return {"user": user, "total": total, "items": rows}

    @app.get("/v1/users", dependencies=v1, tags=["users"])
    def users(prefix: Annotated[str, Query(max_length=512)] = "",
              limit: Annotated[int, Query(ge=1, le=100)] = 20):
        """User ids starting with ``prefix`` (string order), for the page's search."""
        cur = holder.get()
        return {"prefix": prefix, "users": cur.catalog.search_users(prefix, limit),
                "n_users": len(cur.catalog.user_ids)}

    # -- feedback --------------------------------------------------------------------------------
    @app.post("/v1/feedback", status_code=201, dependencies=v1, tags=["feedback"])
    def post_feedback(body: FeedbackEvent):
        """Append the event to the feedback file, flushed to disk before this 201."""
        if events is None:
            raise ApiError(409, "feedback is off: the server was started without --feedback "
                           "FILE")
        cur = holder.get()
        cur.user(body.user)
        cur.item(body.item)
        event = {"event_id": uuid.uuid4().hex, "received_at": time.time(),
                 "run_id": cur.run_id, **body.model_dump()}
        events.append(event)
        m["feedback"].inc()
        return {"event_id": event["event_id"], "stored": True}

    # -- admin -----------------------------------------------------------------------------------
    @app.post("/v1/admin/reload", dependencies=[Depends(check_key)], tags=["admin"])
    def reload(body: Optional[ReloadRequest] = None):
        """Load a run (default: the one served, read again) and swap it in; requests in flight
        finish on the old one. Every worker follows."""
        target = (body.run_dir if body and body.run_dir else holder.current.run_dir)
        try:
            new = holder.reload(target)
        except MMKGRecError as e:
            raise ApiError(422, f"reload refused, still serving the previous run: {e}") from None
        m["generation"].set(new.generation)
        return {"run_id": new.run_id, "model": new.model, "dataset": new.dataset,
                "generation": new.generation, "load_s": round(new.load_s, 3)}

    # -- operations ----------------------------------------------------------------------------
    @app.get("/health", tags=["operations"])
    def health():
        cur = holder.get()
        return {"status": "ok", "run_id": cur.run_id, "model": cur.model,
                "dataset": cur.dataset, "n_users": int(cur.run.split.n_users),
                "n_items": int(cur.run.split.n_items), "generation": cur.generation,
                "loaded_at": cur.loaded_at, "pid": os.getpid(), "feedback": events is not None,
                "explain_backends": list(explain_backends), "reload_error": holder.last_error}

    @app.get("/metrics", tags=["operations"])
    def metrics():
        data, ctype = metrics_text()
        return Response(data, media_type=ctype)

    # -- the page --------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def page():
        return HTMLResponse(_static_file("index.html").read_text(encoding="utf-8"),
                            headers=PAGE_HEADERS)

    app.mount("/static", StaticFiles(directory=str(_static_file(""))), name="static")

    return app


def explanation_json(result) -> dict:
    """A ``Run.explain`` result as JSON fields: its ``to_dict()``, a dataclass's fields, a
    mapping, or plain text as ``{"text": ...}``."""
    import dataclasses

    if hasattr(result, "to_dict"):
        out = result.to_dict()
    elif dataclasses.is_dataclass(result):
        out = dataclasses.asdict(result)
    elif isinstance(result, dict):
        out = dict(result)
    else:
        out = {"text": str(result)}
    return json.loads(json.dumps(out, default=str))


# ---- worker processes ----------------------------------------------------------------------
def app_from_env() -> FastAPI:
    """The app of one worker of ``mmkgrec serve --workers N`` (uvicorn's factory), from the
    JSON settings the command put in ``$MMKGREC_SERVE``."""
    settings = json.loads(os.environ[SERVE_ENV])
    return create_app(**settings)
