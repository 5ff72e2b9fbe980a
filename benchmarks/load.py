"""Eight users at once: N Explore sessions stepping a slider against one local server.

    python benchmarks/load.py [--sessions 8] [--seconds 30] [--rate 5] [--model mnist-z2]
                              [--clients ws|chromium] [--rounds 1] [--ttl 5]

Starts `streamlit run app.py` on localhost and opens N sessions of Explore. Each session
steps z[0] --rate times a second for --seconds (up and down between -2 and 2 in 0.2
steps); a probe session beside them steps every 2 s.

--clients ws (default): scripted clients (benchmarks/st_client.py) speak Streamlit's
  websocket protocol as the page does: each step sends the explorer's "move" event and
  reruns only its fragment; z goes out as ui/latent_explorer.js sends it (at once if
  80 ms have passed since the last send, else when they have; sent again when 0.7 s
  pass unacknowledged); --one-in-flight holds a step back while a move is unanswered
  and sends the latest z when the answer comes. They cost a few % of a core, so the
  round trips are the server's. At start-up a check aborts the run if the protocol
  stopped working: the server's z must follow a move, its ack must name it, a move
  with a stale version must be ignored, and a move must rerun only the fragment.
--clients chromium: N headless Chromium contexts (Debian's /usr/bin/chromium) step the
  real page from an in-page timer. On a 2-core machine Chromium's rendering of 9 tabs
  takes a whole core, so its round trips measure Chromium as much as the server.

Prints
  round trip   a step -> the server has acknowledged that z (the explorer's ack): the
               server's fragment rerun for it came back; median, p95 and max over all
               sessions' steps, and the probe's own
  unanswered   steps with no acknowledgement within 30 s
  server CPU   the server's CPU seconds per acknowledged step, and the clients' CPU
  server RSS   the server process's resident memory before the sessions, with them,
               and after they closed and the server dropped them

A closed websocket, cleanly or not, only disconnects a session: Streamlit keeps it
server.disconnectedSessionTTL seconds to be resumed (this run passes --ttl, default 5)
and drops it when its session store is next written after that. So after each round
this waits out the TTL, opens and closes one bare websocket (a write), and reads RSS.
--rounds R repeats the N sessions R times: RSS that grows every round is a per-session
leak; RSS that levels off is the allocator keeping freed memory.

An idle round trip (one session, one step every 2 s) is measured first in the same run:
the baseline. The server is pinned to CPU 0 and the clients (with this script) to the
other CPUs (--no-pin shares them all).
"""
from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from st_client import Session  # noqa: E402
from tests.live_app import app_server, launch_chromium, wait_for_app  # noqa: E402

EXPLORER = "vae_latent_explorer"          # the component's name (ui_common._explorer_component)
SEND_S, RESEND_S = 0.080, 0.700           # ui/latent_explorer.js SEND_MS, RESEND_MS
ANSWER_WAIT_S = 30                        # a step unanswered this long is counted lost
IDLE_EVERY_S, IDLE_SECONDS, PROBE_EVERY_S = 2.0, 10.0, 2.0


# ---------------------------------------------------------------- the server process

def server_pid(port: str) -> int:
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"streamlit" in b" ".join(cmd) and port.encode() in cmd:
                return int(proc.name)
    raise RuntimeError(f"no streamlit process on port {port}")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, clock ticks


def pin(pid: int, cpus: set[int]) -> None:
    """Every thread of pid onto cpus (threads started later inherit it)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), cpus)


def chromium_cpu_s() -> float:
    total = 0.0
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if b"chrom" in (proc / "cmdline").read_bytes()[:200]:
                    total += cpu_s(int(proc.name))
            except (OSError, IndexError, ValueError):
                continue
    return total


def percentile(values, q):
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def run_async(coro):
    """Run a coroutine to its end on a fresh event loop in its own thread (Playwright's
    sync API owns this thread's loop in chromium mode)."""
    out: dict = {}

    def target():
        try:
            out["value"] = asyncio.run(coro)
        except BaseException as e:  # noqa: BLE001 (re-raised below)
            out["error"] = e
    t = threading.Thread(target=target)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out.get("value")


async def drop_disconnected(url: str) -> None:
    """One bare websocket opened and closed: its disconnect writes the session store,
    which removes the sessions whose TTL has passed (they are dropped no sooner)."""
    s = Session(url)
    await s.connect()
    await asyncio.sleep(0.5)
    await s.close()


@dataclass
class Round:
    rts: list[float]          # round trips of the N sessions' steps, ms
    lost: int
    probe_rts: list[float]
    probe_lost: int
    server_cpu_s: float
    client_cpu_s: float
    window_s: float
    rss_busy: float


# ---------------------------------------------------------------- scripted clients (--clients ws)

def explorer_query(model: str) -> str:
    return f"model={model}&z=0.000,0.000"


@dataclass
class Stepper:
    """One user's slider on Explore, over a st_client Session.

    Steps z[0] as STEPPER_JS does and sends z as ui/latent_explorer.js does: a step is a
    new seq; a move {z, seq, v, cid} goes out at once if SEND_S has passed since the last
    send, else when it has; a seq unacknowledged for RESEND_S is sent again. With
    one_in_flight a step waits while a move is unanswered and the latest z goes out when
    the answer comes (or at the resend). A step's round trip ends when the server's ack
    reaches its seq (a later ack answers the earlier steps too, as in the browser)."""
    session: Session
    cid: str
    one_in_flight: bool = False
    z: list[float] = field(default_factory=list)
    v: int = 0
    seq: int = 0                 # the newest step
    sent: int = 0                # the newest seq sent
    ack: int = 0                 # the newest seq the server acknowledged
    last_send: float = -math.inf
    step_at: dict[int, float] = field(default_factory=dict)   # unanswered steps -> when
    rts: list[float] = field(default_factory=list)
    send_timer: asyncio.TimerHandle | None = None
    resend_timer: asyncio.TimerHandle | None = None
    direction: int = 1

    def start(self) -> None:
        data = self.session.components[EXPLORER].data
        self.z, self.v = [float(x) for x in data["z"]], data["v"]
        self.session.on_component = self.on_component

    def step(self) -> None:
        """z[0] by ±0.2, turning at ±2; the browser's input event."""
        x = self.z[0] + self.direction * 0.2
        if x > 2 + 1e-9 or x < -2 - 1e-9:
            self.direction = -self.direction
            x = self.z[0] + self.direction * 0.2
        self.z[0] = round(x, 2)
        self.seq += 1
        self.step_at[self.seq] = time.perf_counter()
        self.schedule_send()

    def schedule_send(self) -> None:
        if self.one_in_flight and self.ack < self.sent:
            return  # on_component (or the resend timer) sends the latest z
        wait = self.last_send + SEND_S - time.perf_counter()
        if wait <= 0:
            self.flush()
        elif self.send_timer is None:
            self.send_timer = asyncio.get_running_loop().call_later(wait, self.flush)

    def flush(self) -> None:
        if self.send_timer:
            self.send_timer.cancel()
        self.send_timer = None
        self.last_send, self.sent = time.perf_counter(), self.seq
        value = {"z": list(self.z), "seq": self.seq, "v": self.v, "cid": self.cid}
        asyncio.get_running_loop().create_task(self.session.send_event(EXPLORER, "move", value))
        self.watch_ack()

    def watch_ack(self) -> None:
        if self.resend_timer:
            self.resend_timer.cancel()
        self.resend_timer = None
        if self.ack < self.seq:
            self.resend_timer = asyncio.get_running_loop().call_later(RESEND_S, self.resend)

    def resend(self) -> None:
        if self.ack < self.seq and self.send_timer is None:
            self.flush()

    def on_component(self, session, name, comp) -> None:
        """The server's fragment output: its ack answers every step up to it."""
        data = comp.data or {}
        if data.get("v", self.v) > self.v:   # the server changed z itself (not in this benchmark)
            self.z, self.v, self.ack = [float(x) for x in data["z"]], data["v"], self.seq
        ack = data.get("ack")
        if isinstance(ack, list) and ack[0] == self.cid and ack[1] > self.ack:
            self.ack = ack[1]
        for s in [s for s in self.step_at if s <= self.ack]:
            self.rts.append(1000 * (comp.at - self.step_at.pop(s)))
        if self.one_in_flight and self.sent <= self.ack < self.seq:
            self.flush()
        else:
            self.watch_ack()

    def stop(self) -> None:
        for t in (self.send_timer, self.resend_timer):
            if t:
                t.cancel()


async def step_for(stepper: Stepper, every: float, seconds: float, phase: float = 0.0) -> None:
    """stepper.step() every `every` seconds for `seconds`, on a fixed schedule, then wait
    for the answers (at most ANSWER_WAIT_S)."""
    await asyncio.sleep(phase)
    t0 = time.perf_counter()
    k = 0
    while (t := t0 + k * every) < t0 + seconds:
        await asyncio.sleep(max(0.0, t - time.perf_counter()))
        stepper.step()
        k += 1
    deadline = time.perf_counter() + ANSWER_WAIT_S
    while stepper.step_at and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    stepper.stop()


class ProtocolBroken(SystemExit):
    pass


def ensure(ok: bool, what: str) -> None:
    if not ok:
        raise ProtocolBroken(f"load.py: the scripted client no longer drives Explore ({what}); "
                             "benchmarks/st_client.py's protocol needs a look (compare with a Chromium "
                             "session's websocket frames)")


async def check_protocol(url: str, model: str) -> None:
    """A move is applied (z follows, ack names it, only the fragment reruns); a move with
    a stale version is ignored. Twice: a server's first session differs from later ones
    (the first runs the hidden root page, which switches to Explore)."""
    for _ in range(2):
        await check_session(url, model)


async def check_session(url: str, model: str) -> None:
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    s = Session(url, page_name="explore", query=explorer_query(model))
    await s.open()
    comp = s.components.get(EXPLORER)
    ensure(comp is not None and isinstance(comp.data, dict) and "v" in comp.data and "z" in comp.data,
           f"no {EXPLORER} component with z and v in its data")
    ensure(bool(comp.fragment_id), "the explorer is not inside a fragment")
    v, z = comp.data["v"], [float(x) for x in comp.data["z"]]
    z[0] = 0.4
    await s.run_fragment(EXPLORER, "move", {"z": z, "seq": 1, "v": v, "cid": "check"})
    data = s.components[EXPLORER].data
    ensure(s.last_status == ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY, f"a move ran more than the fragment "
           f"(script_finished {s.last_status})")
    ensure(data.get("ack") == ["check", 1], f"ack {data.get('ack')} after move seq 1")
    ensure(all(abs(a - b) < 1e-9 for a, b in zip(data["z"], z)), f"server z {data['z']} after sending {z}")
    ensure("z=0.400" in s.query, f"the URL's z did not follow: {s.query}")
    stale = dict(z=[-0.4] + z[1:], seq=2, v=v - 1, cid="check")
    await s.run_fragment(EXPLORER, "move", stale)
    data = s.components[EXPLORER].data
    ensure(data.get("ack") == ["check", 1] and abs(data["z"][0] - 0.4) < 1e-9,
           f"a move with a stale version was applied: z {data['z']}, ack {data.get('ack')}")
    await s.close()


async def open_sessions_ws(url: str, n: int, model: str) -> list[Session]:
    sessions = [Session(url, page_name="explore", query=explorer_query(model)) for _ in range(n)]
    for s in sessions:   # one after another, as users arrive
        await s.open()
    return sessions


async def ws_idle(url: str, model: str) -> list[float]:
    (s,) = await open_sessions_ws(url, 1, model)
    st = Stepper(s, "idle")
    st.start()
    await step_for(st, IDLE_EVERY_S, IDLE_SECONDS)
    await s.close()
    return st.rts


async def ws_round(url: str, pid: int, n: int, model: str, rate: float, seconds: float,
                   one_in_flight: bool) -> Round:
    sessions = await open_sessions_ws(url, n + 1, model)
    steppers = [Stepper(s, f"s{i}", one_in_flight) for i, s in enumerate(sessions)]
    for st in steppers:
        st.start()
    *users, probe = steppers
    every = 1 / rate
    cpu0, me0, t0 = cpu_s(pid), time.process_time(), time.perf_counter()
    await asyncio.gather(step_for(probe, PROBE_EVERY_S, seconds),
                         *(step_for(st, every, seconds, phase=i * every / n) for i, st in enumerate(users)))
    cpu1, me1, t1 = cpu_s(pid), time.process_time(), time.perf_counter()
    rss_busy = rss_mb(pid)
    for s in sessions:
        await s.close()
    return Round(rts=[t for st in users for t in st.rts], lost=sum(len(st.step_at) for st in users),
                 probe_rts=probe.rts, probe_lost=len(probe.step_at), server_cpu_s=cpu1 - cpu0,
                 client_cpu_s=me1 - me0, window_s=t1 - t0, rss_busy=rss_busy)


# ---------------------------------------------------------------- Chromium (--clients chromium)

# Steps z[0] up and down between -2 and 2 (every picture new) from an in-page timer;
# each step's round trip ends when the server acknowledges a z sent after it.
STEPPER_JS = """([every, seconds]) => {
  const root = document.querySelector('.vle'), ex = root.__explorer;
  const slider = root.querySelector('input[type=range]');
  window.__rt = []; window.__lost = 0;
  let dir = 1; const t_end = performance.now() + seconds * 1000;
  const step = () => {
    if (performance.now() > t_end) return;
    let v = Number(slider.value) + dir * Number(slider.step || 0.05) * 4;
    if (v > 2 || v < -2) { dir = -dir; v = Number(slider.value) + dir * 0.2; }
    slider.value = v.toFixed(2);
    const want = ex.seq + 1, t0 = performance.now();
    slider.dispatchEvent(new Event('input', {bubbles: true}));
    const poll = () => {
      const dt = performance.now() - t0;
      if (ex.ack >= want) window.__rt.push(dt);
      else if (dt > 30000) window.__lost += 1;
      else setTimeout(poll, 5);
    };
    setTimeout(poll, 5);
    setTimeout(step, every);
  };
  step();
}"""


def open_sessions(browser, url: str, n: int, model: str) -> list:
    pages = []
    for _ in range(n):
        ctx = browser.new_context(viewport={"width": 1200, "height": 900})
        page = ctx.new_page()
        page.goto(f"{url}/explore?{explorer_query(model)}")
        pages.append(page)
    for page in pages:
        wait_for_app(page, 120_000)
        page.wait_for_function("() => { const r = document.querySelector('.vle'); return r && r.__explorer"
                               " && r.__explorer.z && window.__vaeDecoders; }", timeout=120_000)
    return pages


def run_steps(pages, every_ms: int, seconds: float) -> list[tuple[list[float], int]]:
    for page in pages:
        page.evaluate(STEPPER_JS, [every_ms, seconds])
    time.sleep(seconds + 0.5)
    deadline = time.time() + ANSWER_WAIT_S + 1
    out = []
    for page in pages:  # wait for the last steps' answers (or their 30 s timeout)
        while True:
            n_rt, lost = page.evaluate("() => [window.__rt.length, window.__lost]")
            if time.time() > deadline or n_rt + lost >= int(seconds * 1000 / every_ms) - 1:
                break
            time.sleep(0.2)
        out.append((page.evaluate("window.__rt"), page.evaluate("window.__lost")))
    return out


def chromium_idle(browser, url: str, model: str) -> list[float]:
    warm = open_sessions(browser, url, 1, model)
    idle = run_steps(warm, int(1000 * IDLE_EVERY_S), IDLE_SECONDS)[0][0]
    warm[0].context.close()
    return idle


def chromium_round(browser, url: str, pid: int, n: int, model: str, rate: float, seconds: float) -> Round:
    pages = open_sessions(browser, url, n, model)
    probe = open_sessions(browser, url, 1, model)
    cpu0, chrome0, t0 = cpu_s(pid), chromium_cpu_s(), time.perf_counter()
    probe[0].evaluate(STEPPER_JS, [int(1000 * PROBE_EVERY_S), seconds])
    results = run_steps(pages, int(1000 / rate), seconds)
    cpu1, chrome1, t1 = cpu_s(pid), chromium_cpu_s(), time.perf_counter()
    probe_rt, probe_lost = probe[0].evaluate("window.__rt"), probe[0].evaluate("window.__lost")
    rss_busy = rss_mb(pid)
    for page in pages + probe:
        page.context.close()
    return Round(rts=[t for rt, _ in results for t in rt], lost=sum(n for _, n in results), probe_rts=probe_rt,
                 probe_lost=probe_lost, server_cpu_s=cpu1 - cpu0, client_cpu_s=chrome1 - chrome0,
                 window_s=t1 - t0, rss_busy=rss_busy)


# ---------------------------------------------------------------- the run

def stats_line(label: str, rts: list[float], lost: int, p95: bool = True) -> str:
    med = statistics.median(rts) if rts else float("nan")
    spread = (f"p95 {percentile(rts, .95):6.0f} ms   " if p95 else "") + f"max {max(rts, default=float('nan')):6.0f} ms"
    return f"  {label:<18}median {med:6.0f} ms   {spread} ({len(rts)} steps answered, {lost} unanswered)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sessions", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--rate", type=float, default=5, help="steps per second per session")
    ap.add_argument("--model", default="mnist-z2")
    ap.add_argument("--clients", choices=("ws", "chromium"), default="ws",
                    help="scripted websocket clients (default) or headless Chromium pages")
    ap.add_argument("--rounds", type=int, default=1, help="rounds of --sessions sessions, closed after each")
    ap.add_argument("--one-in-flight", action="store_true",
                    help="ws clients hold a step back while a move is unanswered (the page does not)")
    ap.add_argument("--no-pin", action="store_true", help="let the server and the clients share all CPUs")
    ap.add_argument("--ttl", type=int, default=5, help="server.disconnectedSessionTTL for this run (default 5 s)")
    ap.add_argument("--post-script-gc", action="store_true",
                    help="Streamlit's default runner.postScriptGC (a full gc.collect after every run, fragment "
                         "runs included), which the shipped config turns off: the before of that change")
    args = ap.parse_args()
    flags = ("--server.address", "127.0.0.1", "--server.disconnectedSessionTTL", str(args.ttl),
             *(("--runner.postScriptGC", "true") if args.post_script_gc else ()))
    cpus = sorted(os.sched_getaffinity(0))
    pinned = not args.no_pin and len(cpus) >= 2
    if pinned:  # this script and the clients it starts on the other CPUs
        os.sched_setaffinity(0, set(cpus[1:]))
    chromium = args.clients == "chromium"
    rounds: list[tuple[Round, float]] = []
    with app_server(args=flags) as url:
        pid = server_pid(url.rsplit(":", 1)[1])
        if pinned:
            pin(pid, {cpus[0]})
        pw = browser = None
        if chromium:
            from playwright.sync_api import sync_playwright
            pw = sync_playwright().start()
            browser = launch_chromium(pw)
        try:
            # warm: the model, its latent cache and the decoder file are loaded once, like a running server
            if chromium:
                idle = chromium_idle(browser, url, args.model)
            else:
                run_async(check_protocol(url, args.model))
                idle = run_async(ws_idle(url, args.model))
            time.sleep(args.ttl + 1)
            run_async(drop_disconnected(url))
            time.sleep(1)
            rss0 = rss_mb(pid)
            for _ in range(args.rounds):
                if chromium:
                    r = chromium_round(browser, url, pid, args.sessions, args.model, args.rate, args.seconds)
                else:
                    r = run_async(ws_round(url, pid, args.sessions, args.model, args.rate, args.seconds,
                                           args.one_in_flight))
                time.sleep(args.ttl + 1)             # the closed sessions' TTL passes,
                run_async(drop_disconnected(url))    # a store write drops them
                time.sleep(1)
                rounds.append((r, rss_mb(pid)))
        finally:
            if browser:
                browser.close()
                pw.stop()
    client_name = "Chromium" if chromium else "the ws clients"
    print(f"{args.sessions} sessions × {args.rate:g} steps/s for {args.seconds:g} s on {args.model} "
          f"(+ a probe every 2 s), {args.clients} clients"
          + (" (one move in flight)" if args.one_in_flight and not chromium else "")
          + (f", {args.rounds} rounds" if args.rounds > 1 else "") + "; idle baseline first; "
          + (f"server on CPU {cpus[0]}, clients on CPU {','.join(map(str, cpus[1:]))}" if pinned else "CPUs shared"))
    print(stats_line("idle round trip", idle, 0))
    for i, (r, rss_after) in enumerate(rounds, 1):
        if len(rounds) > 1:
            print(f" round {i}")
        print(stats_line("loaded round trip", r.rts, r.lost))
        print(stats_line("probe round trip", r.probe_rts, r.probe_lost, p95=False))
        print(f"  server CPU        {1000 * r.server_cpu_s / max(1, len(r.rts) + len(r.probe_rts)):6.1f} ms per "
              f"answered step ({100 * r.server_cpu_s / r.window_s:.0f}% of a core; {client_name} "
              f"{100 * r.client_cpu_s / r.window_s:.0f}%)")
        print(f"  server RSS        {rss0:6.0f} MB before, {r.rss_busy:6.0f} MB with the sessions, "
              f"{rss_after:6.0f} MB after they were dropped ({rss_after - rss0:+.0f} MB)")


if __name__ == "__main__":
    main()
