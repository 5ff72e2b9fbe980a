"""Eight users at once: N Explore sessions stepping a slider against one local server.

    python benchmarks/load.py [--sessions 8] [--seconds 30] [--rate 5] [--model mnist-z2]

Starts `streamlit run app.py` on localhost and opens N sessions of Explore in Debian's
Chromium (headless, one browser, a context each: separate Streamlit sessions). Each
session steps z[0] --rate times a second for --seconds, from a timer inside the page
(a key press through the automation protocol costs ~40 ms, which one Python thread
cannot do 40 times a second). A probe session beside them steps every 2 s.

Prints
  round trip   a step -> the server has acknowledged that z (the explorer's ack): the
               server's fragment rerun for it came back; median, p95 and max over all
               sessions' steps, and the probe's own
  unanswered   steps with no acknowledgement within 30 s
  server RSS   the server process's resident memory before the sessions, at their end,
               and after they closed (the server drops a closed session's state once
               server.disconnectedSessionTTL has passed: the shipped config sets it)
  CPU          the server's CPU seconds per acknowledged step

An idle round trip (one session, one step every 2 s) is measured first in the same
run: the baseline. Users' browsers run on their own machines, the sessions' Chromium
here: so the server is pinned to CPU 0 and Chromium (with this script) to the other
CPUs (--no-pin shares them all), and Chromium's own CPU time is printed too.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.live_app import app_server, launch_chromium, wait_for_app  # noqa: E402

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
    import os
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


def open_sessions(browser, url: str, n: int, model: str) -> list:
    pages = []
    for _ in range(n):
        ctx = browser.new_context(viewport={"width": 1200, "height": 900})
        page = ctx.new_page()
        page.goto(f"{url}/explore?model={model}&z=0.000,0.000")
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
    deadline = time.time() + 31
    out = []
    for page in pages:  # wait for the last steps' answers (or their 30 s timeout)
        while True:
            n_rt, lost, sent = page.evaluate("() => [window.__rt.length, window.__lost, "
                                             "document.querySelector('.vle').__explorer.seq]")
            if time.time() > deadline or n_rt + lost >= int(seconds * 1000 / every_ms) - 1:
                break
            time.sleep(0.2)
        out.append((page.evaluate("window.__rt"), page.evaluate("window.__lost")))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sessions", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--rate", type=float, default=5, help="steps per second per session")
    ap.add_argument("--model", default="mnist-z2")
    ap.add_argument("--no-pin", action="store_true", help="let the server and Chromium share all CPUs")
    ap.add_argument("--ttl", type=int, default=None, help="server.disconnectedSessionTTL for this run (default: shipped)")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright
    flags = ("--server.address", "127.0.0.1") + (("--server.disconnectedSessionTTL", str(args.ttl)) if args.ttl else ())
    import os
    cpus = sorted(os.sched_getaffinity(0))
    pinned = not args.no_pin and len(cpus) >= 2
    if pinned:  # this script and the Chromium it starts on the other CPUs
        os.sched_setaffinity(0, set(cpus[1:]))
    with app_server(args=flags) as url, sync_playwright() as pw:
        pid = server_pid(url.rsplit(":", 1)[1])
        if pinned:
            pin(pid, {cpus[0]})
        browser = launch_chromium(pw)
        # warm: the model, its latent cache and the decoder file are loaded once, like a running server
        warm = open_sessions(browser, url, 1, args.model)
        idle = run_steps(warm, 2000, 10)[0][0]
        warm[0].context.close()
        time.sleep(3)
        rss0 = rss_mb(pid)
        pages = open_sessions(browser, url, args.sessions, args.model)
        probe = open_sessions(browser, url, 1, args.model)
        cpu0, chrome0 = cpu_s(pid), chromium_cpu_s()
        probe[0].evaluate(STEPPER_JS, [2000, args.seconds])
        results = run_steps(pages, int(1000 / args.rate), args.seconds)
        cpu1, chrome1 = cpu_s(pid), chromium_cpu_s()
        probe_rt, probe_lost = probe[0].evaluate("window.__rt"), probe[0].evaluate("window.__lost")
        rss_busy = rss_mb(pid)
        for page in pages + probe:
            page.context.close()
        browser.close()
        # closed sessions are dropped after the TTL; wait it out (plus a margin) and measure
        ttl = args.ttl or _shipped_ttl()
        time.sleep(ttl + 10)
        rss_after = rss_mb(pid)
    rts = [t for rt, _ in results for t in rt]
    lost = sum(n for _, n in results)
    print(f"{args.sessions} sessions × {args.rate:g} steps/s for {args.seconds:g} s on {args.model} "
          f"(+ a probe every 2 s); idle baseline first; "
          + (f"server on CPU {cpus[0]}, Chromium on CPU {','.join(map(str, cpus[1:]))}" if pinned else "CPUs shared"))
    print(f"  idle round trip   median {statistics.median(idle):6.0f} ms   p95 {percentile(idle, .95):6.0f} ms "
          f"({len(idle)} steps)")
    print(f"  loaded round trip median {statistics.median(rts):6.0f} ms   p95 {percentile(rts, .95):6.0f} ms   "
          f"max {max(rts):6.0f} ms ({len(rts)} steps answered, {lost} unanswered)")
    print(f"  probe round trip  median {statistics.median(probe_rt) if probe_rt else float('nan'):6.0f} ms   "
          f"max {max(probe_rt) if probe_rt else float('nan'):6.0f} ms ({len(probe_rt)} answered, "
          f"{probe_lost} unanswered)")
    print(f"  server CPU        {1000 * (cpu1 - cpu0) / max(1, len(rts) + len(probe_rt)):6.1f} ms per answered step "
          f"({100 * (cpu1 - cpu0) / args.seconds:.0f}% of a core; Chromium {100 * (chrome1 - chrome0) / args.seconds:.0f}%)")
    print(f"  server RSS        {rss0:6.0f} MB before, {rss_busy:6.0f} MB with the sessions, "
          f"{rss_after:6.0f} MB {ttl + 10} s after they closed ({rss_after - rss0:+.0f} MB)")


def _shipped_ttl() -> int:
    import tomllib
    cfg = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    return int(cfg.get("server", {}).get("disconnectedSessionTTL", 120))


if __name__ == "__main__":
    main()
