"""`chainrule playground`: the interactive lecture in the browser (needs the ``playground`` extra)."""

from __future__ import annotations

import argparse

import starlette  # noqa: F401 - a missing extra shows as "not available" in `chainrule --help`
import uvicorn  # noqa: F401


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: only this machine can connect)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    parser.add_argument("--open", action="store_true", help="open the page in the default browser")
    parser.add_argument("--max-sessions", type=int, default=16, help="most browser tabs served at once (default 16)")


def run(args) -> int:
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be in [0, 65535], got {args.port}")
    if not 1 <= args.max_sessions <= 256:
        raise ValueError(f"--max-sessions must be in [1, 256], got {args.max_sessions}")
    from ..web import serve
    serve(args.host, args.port, args.max_sessions, open_browser=args.open)
    return 0
