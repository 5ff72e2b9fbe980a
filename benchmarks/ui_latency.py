"""UI latency in a real browser: Explore slider step -> new decoded image on screen.

    python benchmarks/ui_latency.py [--moves 30] [--model mnist-z2]

Starts `streamlit run app.py` on localhost, opens Explore in Debian's Chromium
(headless) and prints:
  cold start   process spawn -> first decoded image loaded in the page
  slider step  key press on a z slider -> the new image loaded (src changed and
               decoded by the browser); median and 95th percentile over --moves
               presses, all in one direction from z[0] = -0.75, so every image is new
               (an image seen before is served from the browser's cache and would
               flatter the figure)
  full rerun   the same measure for the Reset button, which reruns the whole page
               (the path a slider step would take without the fragment): the
               baseline measured in the same run
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.live_app import app_server, launch_chromium  # noqa: E402

NEW_IMAGE_JS = """(before) => {
  const img = document.querySelector('img[alt="decode(z)"]');
  return !!img && img.src !== before && img.complete && img.naturalWidth > 0;
}"""
IMAGE_SRC_JS = """() => {
  const img = document.querySelector('img[alt="decode(z)"]');
  return img ? img.src : null;
}"""


def percentile(values, q):
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--moves", type=int, default=30)
    p.add_argument("--model", default="mnist-z2")
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        t_spawn = time.perf_counter()
        with app_server() as url:
            page.goto(f"{url}/?model={args.model}&z=-0.750,0.000")
            page.wait_for_function(NEW_IMAGE_JS, arg="none", timeout=120_000, polling="raf")
            cold = time.perf_counter() - t_spawn
            page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
            time.sleep(1.0)  # let the first run settle

            slider = page.get_by_role("slider", name="z[0]")
            slider.focus()
            steps = []
            for i in range(args.moves):
                before = page.evaluate(IMAGE_SRC_JS)
                key = "ArrowRight"
                t0 = time.perf_counter()
                slider.press(key)
                page.wait_for_function(NEW_IMAGE_JS, arg=before, timeout=30_000, polling="raf")
                steps.append((time.perf_counter() - t0) * 1000)
                time.sleep(0.15)  # a person's pace between presses

            resets = []
            reset = page.get_by_role("button", name="Reset z to 0")
            for i in range(5):
                slider.press("ArrowRight")
                page.wait_for_function(NEW_IMAGE_JS, arg=page.evaluate(IMAGE_SRC_JS), timeout=30_000, polling="raf")
                time.sleep(0.3)
                before = page.evaluate(IMAGE_SRC_JS)
                t0 = time.perf_counter()
                reset.click()
                page.wait_for_function(NEW_IMAGE_JS, arg=before, timeout=30_000, polling="raf")
                resets.append((time.perf_counter() - t0) * 1000)
                time.sleep(0.3)
        browser.close()

    print(f"model {args.model}; {args.moves} slider steps")
    print(f"cold start (spawn -> first decoded image): {cold:6.2f} s   (goal <= 5 s)")
    print(f"slider step -> new image: median {statistics.median(steps):6.1f} ms, "
          f"p95 {percentile(steps, 0.95):6.1f} ms, max {max(steps):6.1f} ms   (goal: median <= 100, p95 <= 200)")
    print(f"full-page rerun (Reset) -> new image: median {statistics.median(resets):6.1f} ms "
          f"({statistics.median(resets) / statistics.median(steps):.1f}x the fragment's step)")


if __name__ == "__main__":
    main()
