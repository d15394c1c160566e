#!/usr/bin/env python3
"""Opens a report's index.html in headless Chromium (Debian's `chromium`)
and checks what a reader would see: every image loads (complete, with a
width), the page logs no console error and throws no exception. Keeps a
full-page screenshot as an artifact.

    tests/browser.py REPORT_DIR/index.html SCREENSHOT.png [MIN_IMAGES]

Talks to Chromium over the DevTools protocol on a pipe
(--remote-debugging-pipe: JSON messages, NUL-terminated, on fds 3 and 4),
so it needs nothing beyond the Python standard library.
"""
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


class Browser:
    def __init__(self):
        self.profile = tempfile.TemporaryDirectory(ignore_cleanup_errors=True)
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()
        # Chromium reads commands on fd 3 and writes replies on fd 4.
        def fds():
            for src, dst in ((to_chrome_r, 3), (from_chrome_w, 4)):
                if src == dst:
                    os.set_inheritable(dst, True)  # dup2 would keep CLOEXEC
                else:
                    os.dup2(src, dst)
        self.proc = subprocess.Popen(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--remote-debugging-pipe", f"--user-data-dir={self.profile.name}",
             "about:blank"],
            # close_fds would close 3 and 4 again after preexec_fn.
            preexec_fn=fds, close_fds=False, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.buf = b""
        self.next_id = 0
        self.events = []

    def send(self, method, params=None, session=None, timeout=30):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = self.read()
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
        raise TimeoutError(method)

    def read(self):
        while b"\0" not in self.buf:
            chunk = os.read(self.from_chrome, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\0", 1)
        m = json.loads(raw)
        if "method" in m:
            self.events.append(m)
        return m

    def wait_event(self, method, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if any(e["method"] == method for e in self.events):
                return
            self.read()
        raise TimeoutError(method)

    def close(self):
        # Chromium's renderer and helper processes share its session.
        try:
            os.killpg(self.proc.pid, 9)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.profile.cleanup()


def console_errors(events):
    """Console errors, exceptions and error log entries among DevTools events."""
    errors = []
    for e in events:
        p = e.get("params", {})
        if e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
        elif e["method"] == "Runtime.exceptionThrown":
            errors.append(p.get("exceptionDetails", {}).get("text", "exception"))
        elif e["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            errors.append(p["entry"].get("text", ""))
    return errors


def main():
    page = Path(sys.argv[1]).resolve()
    shot = Path(sys.argv[2])
    min_images = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    b = Browser()
    failures = []
    try:
        target = b.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        s = b.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            b.send(f"{domain}.enable", session=s)
        b.send("Page.navigate", {"url": page.as_uri()}, session=s)
        b.wait_event("Page.loadEventFired")
        images = b.send("Runtime.evaluate", {
            "expression": "JSON.stringify(Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth]))",
            "returnByValue": True}, session=s)["result"]["value"]
        images = json.loads(images)
        metrics = b.send("Page.getLayoutMetrics", session=s)["cssContentSize"]
        b.send("Emulation.setDeviceMetricsOverride", {
            "width": 1100, "height": int(metrics["height"]), "deviceScaleFactor": 1, "mobile": False},
            session=s)
        png = b.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True},
                     session=s)["data"]
        shot.parent.mkdir(parents=True, exist_ok=True)
        shot.write_bytes(base64.b64decode(png))
    finally:
        b.close()
    broken = [src for src, done, width in images if not done or width == 0]
    errors = console_errors(b.events)
    if len(images) < min_images:
        failures.append(f"{len(images)} images on the page, expected at least {min_images}")
    if broken:
        failures.append(f"images that did not load: {broken}")
    if errors:
        failures.append(f"console errors: {errors}")
    print(f"browser: {page}: {len(images)} images loaded, {len(errors)} console errors; screenshot {shot}")
    for f in failures:
        print(f"browser: FAILED: {f}", file=sys.stderr)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
