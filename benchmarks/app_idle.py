"""What an idle open page of `artstudio app` costs: the server's and the browser's CPU, per poll period.

Starts the app on a free loopback port with empty folders, opens one page in headless Chromium
(Debian's, driven by Playwright), waits for it to settle, then measures for `--seconds` with no job
running: the server's CPU (this process) and Chromium's (every chromium process, from /proc), as a
percentage of one core. A period of 0 means no timer at all: what the page costs without polling.

    python benchmarks/app_idle.py                       # periods 0, 0.5, 1 and 3 s, 20 s each
    python benchmarks/app_idle.py --periods 1 --seconds 60

On a 2-core machine this is CPU that a training run started from the same page does not get
(docs/app.md: one request per tick for all panels, where there were five).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

CHROMIUM = os.environ.get("ARTSTUDIO_CHROMIUM", "/usr/bin/chromium")


def chromium_cpu_seconds() -> float:
    """User + system CPU seconds of every running chromium process (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if "chrom" not in Path(f"/proc/{pid}/cmdline").read_text(errors="replace"):
                continue
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except OSError:  # the process ended while it was read
            continue
    return total


def measure(period: float, seconds: float, browser) -> tuple[float, float]:
    """(server %, browser %) of one core for one idle page refreshed every `period` s (0: never)."""
    from artstudio.ui.app import start
    from artstudio.ui.studio import AppSettings

    root = Path(tempfile.mkdtemp(prefix="app-idle-"))
    server = start(AppSettings(runs_dir=str(root / "runs"), canvases_dir=str(root / "canvases"),
                               poll_seconds=period or 86400.0))
    try:
        page = browser.new_context(viewport={"width": 1440, "height": 1000}).new_page()
        page.goto(server.url)
        page.wait_for_selector("#as-start")
        time.sleep(5)  # the page's first loads and draws are not idle time
        cpu, web, wall = time.process_time(), chromium_cpu_seconds(), time.monotonic()
        time.sleep(seconds)
        wall = time.monotonic() - wall
        result = 100 * (time.process_time() - cpu) / wall, 100 * (chromium_cpu_seconds() - web) / wall
        page.context.close()
        return result
    finally:
        server.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--periods", default="0,0.5,1,3", help="poll periods in seconds, comma-separated (0: no timer)")
    ap.add_argument("--seconds", type=float, default=20.0, help="measured idle seconds per period")
    args = ap.parse_args(argv)
    try:
        periods = [float(p) for p in args.periods.split(",")]
    except ValueError:
        ap.error(f"--periods {args.periods!r}: comma-separated numbers of seconds, e.g. 0,1")
    if any(p < 0 for p in periods) or args.seconds <= 0:
        ap.error("--periods must be 0 or more and --seconds more than 0")
    if not Path(CHROMIUM).exists():
        print(f"no Chromium at {CHROMIUM}: install Debian's chromium (make browser) or set ARTSTUDIO_CHROMIUM")
        return 1
    from playwright.sync_api import sync_playwright

    rows = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        for period in periods:
            rows.append((period, *measure(period, args.seconds, browser)))
        browser.close()
    base = next((r for r in rows if r[0] == 0), None)
    print(f"\nidle page, {args.seconds:g} s each, % of one core ({os.cpu_count()} cores)")
    print(f"{'poll period':>12} {'server':>8} {'browser':>8}" + ("   browser / no timer" if base else ""))
    for period, server, web in rows:
        label = "no timer" if period == 0 else f"{period:g} s"
        ratio = f"   {web / base[2]:.1f}x" if base and base[2] > 0 else ""
        print(f"{label:>12} {server:7.1f}% {web:7.1f}%{ratio}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
