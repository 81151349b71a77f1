"""``chainrule playground``: the lecture, live, in the browser, driven by the real engine.

A local web server (Starlette + uvicorn) whose page is a thin client: every number it shows is
computed here, by chainrule, in the tab's own :class:`~chainrule.web.session.Session`. The page
and its assets (with a vendored KaTeX for the formulas) ship inside the package, so it works
offline. Needs the ``playground`` extra (``pip install "chainrule[playground]"``).

    from chainrule import web
    web.serve(port=8000)             # what `chainrule playground --port 8000` runs

See docs/playground.md for a walk through the lecture with it.
"""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost: the addresses only this machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(host: str = "127.0.0.1", port: int = 8000, max_sessions: int = 16, open_browser: bool = False,
          log_level: str = "warning") -> None:
    """Run the playground until interrupted. Binds ``host`` (loopback by default: only this
    machine can reach it), prints the URL, and opens it in a browser only with ``open_browser``."""
    import uvicorn

    from .server import create_app, warm_up

    app = create_app(max_sessions=max_sessions)
    warm_up()
    if port == 0:  # pick a free port now, so the printed URL is the real one
        import socket
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}/"
    print(f"chainrule playground: {url}  (Ctrl+C stops it)", flush=True)
    if not is_loopback(host):
        print(f"warning: listening on {host}, reachable from other machines; the default 127.0.0.1 is local only",
              flush=True)
    if open_browser:
        import threading
        import webbrowser
        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    uvicorn.run(app, host=host, port=port, log_level=log_level, ws_max_size=2 << 20)
