"""What two large uploads cost Interpolate on each rerun after the first.

    python benchmarks/upload_reruns.py [--side 7000] [--reruns 10]

Runs pages/interpolate.py under Streamlit's AppTest (the real script, widgets and
caches, no browser) with two --side × (0.8 --side) PNG photos uploaded as its endpoints
(7000 px: 39 Mpx, under the 40 Mpx cap), and prints:
  first run      the upload's decode (once per content), framing and encoding
  scrub rerun    median over --reruns moves of the scrubber: the endpoints are not
                 decoded, framed or encoded again (ui_common.prepared_upload)
  invert rerun   a change of one endpoint's Invert: framing again, no decode
and the same scrub reruns with two test-set images as the endpoints: the baseline,
measured in the same run. The goal (issue 12): a later rerun costs at most 50 ms more
than with no upload. Benchmarks print figures; they never assert on time.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def photo(w: int, h: int, seed: int) -> bytes:
    import io

    import numpy as np
    from PIL import Image, ImageDraw
    rng = np.random.default_rng(seed)
    im = Image.fromarray((200 + rng.integers(0, 3, (h, w))).astype(np.uint8)).convert("RGB")
    ImageDraw.Draw(im).line([(w // 2, h // 5), (w // 2 + w // 20, 4 * h // 5)], fill=(20, 20, 20), width=w // 25)
    buf = io.BytesIO()
    im.save(buf, "PNG", compress_level=6)
    return buf.getvalue()


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return 1000 * (time.perf_counter() - t)


def scrubs(at, n: int) -> list[float]:
    out = []
    for i in range(n):
        s = at.slider(key="interp_scrub")
        out.append(timed(lambda: s.set_value((i + 1) % 12).run()))
        assert not at.exception and not at.error, [e.value for e in (*at.exception, *at.error)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--side", type=int, default=7000)
    ap.add_argument("--reruns", type=int, default=10)
    args = ap.parse_args()
    os.environ.setdefault("VAE_DATA_ROOT", str(REPO.parent / "shared" / "datasets"))
    os.environ.setdefault("VAE_NO_DOWNLOAD", "1")
    from streamlit.testing.v1 import AppTest
    w, h = args.side, int(args.side * 0.8)
    files = [photo(w, h, seed) for seed in (1, 2)]

    def page():
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=300)
        at.run()
        at.switch_page("pages/interpolate.py").run()
        return at

    base = page()
    scrubs(base, 2)  # warm
    baseline = scrubs(base, args.reruns)

    at = page()
    for side in "AB":
        at.radio(key=f"src_{side}").set_value("Upload").run()
    for side, data in zip("AB", files):
        at.file_uploader(key=f"upload_{side}").upload(f"{side}.png", data, "image/png")
    first = timed(at.run)
    later = scrubs(at, args.reruns)
    invert = timed(lambda: at.radio(key="invert_A").set_value("no").run())
    print(f"Interpolate, two {w}×{h} PNG uploads ({w * h / 1e6:.0f} Mpx, {len(files[0]) / 1e6:.1f} and "
          f"{len(files[1]) / 1e6:.1f} MB), AppTest, {args.reruns} reruns each")
    print(f"  first run (both decoded)      {first:8.0f} ms")
    print(f"  scrub rerun, uploads          median {statistics.median(later):6.0f} ms   max {max(later):6.0f} ms")
    print(f"  scrub rerun, test-set images  median {statistics.median(baseline):6.0f} ms   max {max(baseline):6.0f} ms"
          "   (baseline)")
    print(f"  uploads' share of a rerun     {statistics.median(later) - statistics.median(baseline):+6.0f} ms")
    print(f"  Invert changed on one end     {invert:8.0f} ms (framed again from the decoded picture)")


if __name__ == "__main__":
    main()
