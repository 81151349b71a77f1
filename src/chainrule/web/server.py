"""The playground's web server: Starlette routes and one websocket per browser tab.

Each websocket connection owns one :class:`~chainrule.web.session.Session` (its own data,
network, optimizer and training loop); closing the tab closes the socket, which stops the loop and
frees the session. Training runs in the server's event loop in short bursts: each frame trains
the steps that the tab's ``steps_per_second`` owes since the last frame, then draws (at most 60
frames a second). Tabs take turns; when several play at once each gets fewer frames but keeps its
steps per second as long as the machine can train them; a paused tab costs nothing. Routes:

- ``GET /``: the page; ``GET /static/...``: its scripts, styles and the vendored KaTeX;
- ``GET /api/state[?session=ID]``: JSON with ``step``, ``train_loss``, ``test_loss`` (and the
  settings) of that session, or of the most recently active one;
- ``WS /ws``: the tab's messages (below) in, frames out.

Messages from the page are JSON objects with a ``type``: ``config`` (``changes``: settings),
``play``, ``pause``, ``step``, ``reset``, ``hover`` (``node``), ``ack`` (``seq``: the frame it
drew; a page that acks has at most WINDOW frames in flight while playing; each frame carries its
``seq`` and ``configs``, the number of config messages handled so far), ``backprop`` (``example``),
``cost``, ``race`` (``function``, ``optimizers``, ``learning_rate``, ``momentum``, ``steps``,
``lr_all``), ``upload`` (``filename``, ``text``). Every value is validated; nothing from the
client is executed. A websocket whose ``Origin`` is another site is refused (a page elsewhere
cannot drive a local playground).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import time
import traceback
import warnings
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from . import panels
from .data import MAX_UPLOAD_BYTES
from .session import Session

STATIC = Path(__file__).parent / "static"
FPS = 60  # frames a second at most: with one step per frame, 60 steps a second drawn
BURST = 0.03  # seconds of training at most between two frames of a tab
THUMBNAIL_PERIOD = 0.2  # seconds between the neuron maps and the optimizer's equations while playing
WINDOW = 2  # frames a playing tab may have sent and not yet acknowledged as drawn
MAX_MESSAGE = MAX_UPLOAD_BYTES + 4096


def _clean(obj):
    """JSON cannot carry NaN or infinities (a diverged loss): they become null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj


def dumps(obj) -> str:
    try:
        return json.dumps(obj, allow_nan=False)
    except ValueError:
        return json.dumps(_clean(obj), allow_nan=False)


def steps_owed(owed: float, rate: float, elapsed: float, per_step: float) -> tuple[int, float]:
    """(steps to train now, fraction still owed): ``rate`` steps a second over ``elapsed`` seconds,
    but no more than fit in BURST seconds at ``per_step`` seconds a step, so a machine that cannot
    keep up slows down smoothly (the debt is dropped) and the other tabs get their turns."""
    owed = min(owed + rate * elapsed, max(1.0, BURST / per_step))
    n = int(owed)
    return n, owed - n


class Tab:
    """One connected tab: its session, its socket and its training loop."""

    def __init__(self, session: Session, ws: WebSocket):
        self.session, self.ws = session, ws
        self.task: asyncio.Task | None = None
        self._thumbs_at = 0.0
        # frames sent, and frames the page has drawn (None: it never said, so it is not paced)
        self.sent, self.acked = 0, None
        self.configs = 0  # config messages handled (refused ones too): the page knows which changes are answered

    async def send(self, obj: dict) -> None:
        await self.ws.send_text(dumps(obj))

    async def send_frame(self) -> None:
        now = time.monotonic()
        thumbs = not self.session.playing or now - self._thumbs_at >= THUMBNAIL_PERIOD
        if thumbs:
            self._thumbs_at = now
        frame = self.session.frame(thumbnails=thumbs, describe=thumbs)
        frame["seq"], frame["configs"] = self.sent, self.configs
        self.sent += 1
        await self.send(frame)

    def ready(self) -> bool:
        """Whether a playing tab may be sent another frame: fewer than WINDOW are in flight. A page
        slower to draw than the server to train (a busy machine, software rendering) would
        otherwise fall seconds behind, every click answered after the frames queued before it."""
        return self.acked is None or self.sent - self.acked < WINDOW

    async def send_data(self) -> None:
        await self.send({"type": "data", **self.session.data.points()})

    async def _loop(self) -> None:
        s = self.session
        owed, last, per_step, fresh = 0.0, time.perf_counter(), 2e-3, False
        while s.playing:
            t0 = time.perf_counter()
            n, owed = steps_owed(owed, s.config["steps_per_second"], t0 - last, per_step)
            last = t0
            if n:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # a diverging run shows NaN; no log spam
                    s.step(n)
                fresh = True
            if fresh and self.ready():  # training goes on while the page catches up; it gets the latest
                await self.send_frame()
                fresh = False
            if n:
                per_step = 0.8 * per_step + 0.2 * (time.perf_counter() - t0) / n
            await asyncio.sleep(max(0.0, 1.0 / FPS - (time.perf_counter() - t0)))

    def play(self) -> None:
        self.session.playing = True
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._loop())
            self.task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task) -> None:
        """A loop that died (a closed socket, a numerical error) pauses the session and says why."""
        self.session.playing = False
        if not task.cancelled() and task.exception() is not None:
            err = task.exception()
            if not isinstance(err, WebSocketDisconnect | RuntimeError):
                print(f"chainrule playground: training loop of {self.session.sid} stopped: {err!r}", flush=True)

    def stop(self) -> None:
        self.session.playing = False
        if self.task is not None:
            self.task.cancel()

    async def handle(self, msg: dict) -> None:
        s, kind = self.session, msg.get("type")
        if kind == "ack":  # the page drew frame ``seq``
            seq = msg.get("seq")
            if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < self.sent:
                raise ValueError(f"ack: seq must be the number of a frame sent, in [0, {self.sent - 1}], got {seq!r}")
            self.acked = max(self.acked or 0, seq + 1)
            return
        s.last_active = time.monotonic()
        if kind == "config":
            self.configs += 1
            rebuilt = s.configure(msg.get("changes", {}))
            if "data" in rebuilt:
                await self.send_data()
        elif kind == "play":
            self.play()
        elif kind == "pause":
            s.playing = False
        elif kind == "step":
            s.playing = False
            s.step(1)
        elif kind == "reset":
            s.reset()
        elif kind == "hover":
            node = msg.get("node")
            s.hover = node if isinstance(node, str) and len(node) < 16 else None
        elif kind == "upload":
            text, name = msg.get("text"), msg.get("filename", "upload.csv")
            if not isinstance(text, str) or not isinstance(name, str):
                raise ValueError("upload: send the CSV as text with its file name")
            s.upload_csv(text, name[-200:])
            await self.send_data()
        elif kind in ("backprop", "cost"):
            await self.send(self._panel(kind, msg))
            return
        elif kind == "race":  # touches no session: a worker thread, so a long race stalls no tab's training
            await self.send(await asyncio.to_thread(_race, msg))
            return
        else:
            raise ValueError(f"unknown message type {kind!r}")
        await self.send_frame()

    def _panel(self, kind: str, msg: dict) -> dict:
        if kind == "backprop":
            return panels.backprop(self.session, msg.get("example", 0))
        return panels.cost_table(self.session)


def _race(msg: dict) -> dict:
    """The optimizer race of a ``race`` message; runs in a worker thread. A diverging optimizer's
    overflow is silenced by np.errstate, which is per thread (warnings.catch_warnings is not)."""
    with np.errstate(all="ignore"):
        return panels.race(msg.get("function", "ravine"), msg.get("optimizers", ["sgd"]), msg.get("learning_rate"),
                           msg.get("momentum", 0.9), msg.get("steps", 100), bool(msg.get("lr_all", False)))


class Hub:
    """All open sessions, by id; at most ``max_sessions`` at once."""

    def __init__(self, max_sessions: int = 16, resolution: int = 50):
        self.max_sessions, self.resolution = int(max_sessions), int(resolution)
        self.sessions: dict[str, Session] = {}
        self.tabs: dict[str, Tab] = {}
        self._ids = itertools.count(1)

    def open(self) -> Session:
        if len(self.sessions) >= self.max_sessions:
            raise ValueError(f"the playground already serves {self.max_sessions} tabs (--max-sessions): close one")
        sid = f"s{next(self._ids)}"
        self.sessions[sid] = Session(sid, resolution=self.resolution)
        return self.sessions[sid]

    def close(self, sid: str) -> None:
        self.sessions.pop(sid, None)
        self.tabs.pop(sid, None)

    def latest(self) -> Session | None:
        return max(self.sessions.values(), key=lambda s: s.last_active, default=None)


def warm_up() -> None:
    """Build and train a throwaway session once: the first session otherwise pays for importing
    scikit-learn and compiling the optimizer kernels (seconds on a busy machine) while its tab waits."""
    s = Session("warm-up")
    s.step(2)
    s.frame()


def _same_origin(ws: WebSocket) -> bool:
    origin = ws.headers.get("origin")
    return origin is None or urlparse(origin).netloc == ws.headers.get("host")


def create_app(max_sessions: int = 16, resolution: int = 50) -> Starlette:
    """The playground as an ASGI app (serve it with uvicorn; :func:`chainrule.web.serve` does)."""
    hub = Hub(max_sessions, resolution)

    async def index(request: Request):
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def api_state(request: Request):
        sid = request.query_params.get("session")
        s = hub.sessions.get(sid) if sid else hub.latest()
        if s is None:
            return JSONResponse({"error": f"no session {sid!r}" if sid else "no session: open the page first"},
                                status_code=404)
        return JSONResponse(_clean(s.state()))

    async def websocket(ws: WebSocket):
        if not _same_origin(ws):
            await ws.close(code=1008)
            return
        await ws.accept()
        try:
            session = hub.open()
        except ValueError as e:
            await ws.send_text(dumps({"type": "error", "message": str(e)}))
            await ws.close(code=1013)
            return
        tab = hub.tabs[session.sid] = Tab(session, ws)
        try:
            await tab.send({"type": "hello", "session": session.sid, "limits": _limits()})
            await tab.send_data()
            await tab.send_frame()
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    raise WebSocketDisconnect(message.get("code", 1000))
                await _dispatch(tab, message.get("text"))
        except WebSocketDisconnect:
            pass
        finally:
            tab.stop()
            hub.close(session.sid)

    app = Starlette(routes=[Route("/", index), Route("/api/state", api_state), WebSocketRoute("/ws", websocket),
                            Mount("/static", StaticFiles(directory=STATIC), name="static")])
    app.state.hub = hub
    return app


# what a bad message can raise: a refused value, a wrong type, int(1e400)
REFUSED = (ValueError, KeyError, TypeError, OverflowError)


async def _dispatch(tab: Tab, text: str | None) -> None:
    """One message: handled, or answered with an error the page shows (the session stays usable).
    ``text`` is None for a binary frame. An unexpected error is answered too, and its traceback
    printed to the server's log: one bad message never closes the tab."""
    msg = None
    try:
        if text is None:
            raise ValueError("a message must be JSON text, got a binary frame")
        if len(text) > MAX_MESSAGE:
            raise ValueError(f"message of {len(text):,} characters; at most {MAX_MESSAGE:,} (uploads: 1 MiB)")
        try:
            msg = json.loads(text)
        except RecursionError:
            raise ValueError("a message nested too deeply: send a flat JSON object with a 'type'") from None
        if not isinstance(msg, dict):
            raise ValueError("a message must be a JSON object with a 'type'")
        await tab.handle(msg)
    except WebSocketDisconnect:
        raise
    except Exception as e:  # noqa: BLE001 - reported to the page; unexpected ones logged with their traceback
        if not isinstance(e, REFUSED):
            traceback.print_exc()
            e = RuntimeError(f"internal error handling {msg.get('type') if isinstance(msg, dict) else 'a'} message: "
                             f"{e!r} (the server's log has the traceback)")
        await tab.send({"type": "error", "message": str(e), "for": msg.get("type") if isinstance(msg, dict) else None})
        await tab.send_frame()


def _limits() -> dict:
    from . import session as S
    return {"max_layers": S.MAX_LAYERS, "max_neurons": S.MAX_NEURONS, "newton_max_params": S.NEWTON_MAX_PARAMS,
            "max_upload_bytes": MAX_UPLOAD_BYTES, "defaults": S.DEFAULTS}
