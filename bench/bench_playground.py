"""Playground speed: training steps per second with the 50 x 50 heatmap rendered.

The issue's target: >= 30 training steps per second, rendered, for a 2-8-8-1 network on moons on
2 cores. Two measurements:

1. In process, uncapped: one optimizer step, then the whole frame the page draws (losses over
   both splits, the 50 x 50 decision-boundary heatmap as RGBA, weights, ``Optimizer.describe()``,
   and the JSON text), after *every* step. With ``--thumbnails`` each frame also renders every
   neuron's 20 x 20 map (the server sends those at most 5 times a second). Medians of rounds.
2. End to end: the real server in a subprocess, tabs connected over websockets, all playing at once
   for a few seconds; steps per second as each tab sees them in the frames it receives. A tab asks
   for a speed (``steps_per_second``: 30, the target, or 10000, "as fast as it can"); the server draws
   at most 60 frames a second per tab, each after the steps the tab is owed.

Wall-clock time (what a student sees), on whatever else the machine is doing.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/bench_playground.py [--seconds 5] [--rounds 5] [--tabs 1,3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import time

from chainrule.web.server import dumps
from chainrule.web.session import Session

CONFIG = {"dataset": "moons", "hidden": [8, 8], "features": ["x1", "x2"], "activation": "tanh", "optimizer": "sgd",
          "learning_rate": 0.03, "batch_size": 10}


def in_process(rounds: int, steps: int, thumbnails: bool) -> tuple[float, float]:
    """(median steps/s with a frame per step, median steps/s training alone)."""
    s = Session(config=CONFIG)
    assert [lin.weight.shape for lin in s.linears] == [(8, 2), (8, 8), (1, 8)]
    s.step(5)
    dumps(s.frame(thumbnails))  # warm up
    rendered, bare = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(steps):
            s.step(1)
            dumps(s.frame(thumbnails))
        rendered.append(steps / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        s.step(steps)
        bare.append(steps / (time.perf_counter() - t0))
    return statistics.median(rendered), statistics.median(bare)


async def _tab(url: str, seconds: float, speed: int) -> tuple[float, float]:
    """(steps/s, frames/s) one tab sees while playing at ``speed`` steps/s."""
    import websockets

    async with websockets.connect(url, max_size=None) as ws:
        while json.loads(await ws.recv())["type"] != "frame":
            pass
        await ws.send(json.dumps({"type": "config", "changes": {**CONFIG, "steps_per_second": speed}}))
        await ws.send(json.dumps({"type": "play"}))
        first = last = None
        frames = 0
        while True:
            msg = json.loads(await ws.recv())
            if msg["type"] != "frame" or not msg["playing"]:
                continue
            now = time.perf_counter()
            if first is None:
                first = (now, msg["step"])
            last = (now, msg["step"])
            frames += 1
            if now - first[0] >= seconds:
                break
        await ws.send(json.dumps({"type": "pause"}))
        dt = last[0] - first[0]
        return (last[1] - first[1]) / dt, (frames - 1) / dt


def end_to_end(tabs: int, seconds: float, speed: int, port: int) -> list[tuple[float, float]]:
    async def run():
        url = f"ws://127.0.0.1:{port}/ws"
        return await asyncio.gather(*(_tab(url, seconds, speed) for _ in range(tabs)))
    return asyncio.run(run())


def _server() -> tuple[subprocess.Popen, int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "chainrule.cli", "playground", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = proc.stdout.readline()  # printed after the warm-up, just before it listens
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"the playground server did not start: {line}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=200, help="steps per in-process round")
    ap.add_argument("--seconds", type=float, default=5.0, help="playing time per end-to-end measurement")
    ap.add_argument("--tabs", default="1,3,6", help="numbers of tabs playing at once, end to end")
    a = ap.parse_args(argv)
    print("2-8-8-1 tanh MLP on moons (200 train / 200 test points), SGD lr 0.03, batch 10; heatmap 50 x 50; wall clock\n")
    print("| measurement | steps/s |")
    print("|---|---:|")
    r, bare = in_process(a.rounds, a.steps, thumbnails=False)
    print(f"| in process: a step + a full frame (heatmap, losses, weights, equations, JSON) per step | {r:.0f} |")
    r, _ = in_process(a.rounds, a.steps, thumbnails=True)
    print(f"| in process: the same + every neuron's 20 x 20 map per step | {r:.0f} |")
    print(f"| in process: training steps alone, no frame | {bare:.0f} |")
    proc, port = _server()
    try:
        for tabs in [int(t) for t in a.tabs.split(",") if t]:
            for speed in (30, 10000):
                got = end_to_end(tabs, a.seconds, speed, port)
                ask = "30 steps/s" if speed == 30 else "as fast as it can"
                print(f"| websocket, {tabs} tab(s) playing at once, each asking {ask}: steps/s (frames/s) of each tab | "
                      f"{' / '.join(f'{r:.0f} ({f:.0f})' for r, f in got)} |")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
