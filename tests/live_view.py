#!/usr/bin/env python3
"""The live view in a real browser (headless Chromium over the DevTools pipe).

    tests/live_view.py ACQUIRE SCREENSHOT

Records the simulator with the `sim` board profile (4 channels with names and
units) carrying a 1 kHz test tone at 200 k scans/s for 14 s with `--live`,
and a forced overrun 5 s in. While it records, Chromium opens the printed URL
with a 5 ms scope window. Asserted: the page shows the profile's channel
names and units; frames keep arriving (the rate is a figure) and the traces change
over two seconds; the scope holds the tone still (frame after frame, the
trace rises through its middle at the trigger point and peaks a quarter
period later) and the spectrum peaks within one bin of 1 kHz; the injected
loss appears on the page with the exact size the recording's manifest gives
it; no console error; the recording verifies. A screenshot is kept.
"""
import base64
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from browser import Browser, console_errors  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def main():
    acquire, shot = sys.argv[1], Path(sys.argv[2])
    failures = []

    def check(ok, what):
        print(f"live_view: {'ok' if ok else 'FAILED'}: {what}", file=sys.stderr if not ok else sys.stdout)
        if not ok:
            failures.append(what)

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        rec = subprocess.Popen(
            [acquire, "record", "--profile", str(ROOT / "boards/sim/acquire.toml"), "--rate", "200k",
             "--duration", "14s", "--out", str(run), "--live", "--fault", "overrun:8@5s", "--allow-loss",
             "--tone", "1000"],
            stderr=subprocess.PIPE, text=True)
        url = None
        for line in rec.stderr:
            if "live view at" in line:
                url = line.split("live view at", 1)[1].strip()
                break
        if url is None:
            rec.wait()
            sys.exit("live_view: acquire printed no live view URL")
        # Keep draining stderr so the recorder never blocks on it.
        log = []
        threading.Thread(target=lambda: log.extend(rec.stderr), daemon=True).start()

        # Only the page itself may read the stream (acquire/src/live/origin.rs):
        # a WebSocket handshake from another site's page, or addressed by a
        # DNS name (rebinding), or without the printed URL's token, is refused
        # (403, and not one frame follows); the same handshake from the
        # page's own origin with the token is accepted.
        hostport, query = url.split("//", 1)[1].split("/", 1)
        query = query.lstrip("/")
        check(query.startswith("?token=") and len(query) == len("?token=") + 32,
              "the printed URL carries a 128-bit token")

        def handshake(host, origin, target):
            import socket
            h, p = hostport.rsplit(":", 1)
            with socket.create_connection((h.strip("[]"), int(p)), timeout=5) as c:
                req = (f"GET {target} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")
                if origin:
                    req += f"Origin: {origin}\r\n"
                c.sendall((req + "\r\n").encode())
                # Everything the server says within a second (frames flow at 20/s).
                got, c_end = b"", time.time() + 1.0
                c.settimeout(0.2)
                while time.time() < c_end:
                    try:
                        d = c.recv(4096)
                    except OSError:
                        continue
                    if not d:
                        break
                    got += d
                status = got.split(b"\r\n", 1)[0].decode(errors="replace")
                frames = b'"type"' in got  # a frame's JSON; a 403 body has none
                return status, frames

        own = f"http://{hostport}"
        status, frames = handshake(hostport, own, "/ws" + query)
        check(" 101 " in status and frames, "WebSocket from the page's own origin, with the token: 101 and frames")
        for what, host, origin, target in [
            ("from another site's page", hostport, "https://evil.example", "/ws" + query),
            ("addressed by a DNS name other than localhost (rebinding)",
             "evil.example:" + hostport.rsplit(":", 1)[1], None, "/ws" + query),
            ("without the token", hostport, own, "/ws"),
            ("with a wrong token", hostport, own, "/ws?token=" + "0" * 32),
            ("with the token's first half", hostport, own, "/ws" + query[:-16]),
        ]:
            status, frames = handshake(host, origin, target)
            check(" 403" in status and not frames, f"WebSocket {what}: 403 and no frame (got {status!r})")
        status, _ = handshake(hostport, None, "/")
        check(" 403" in status, f"the page without the token: 403 (got {status!r})")
        status, _ = handshake(hostport, "https://evil.example", "/" + query)
        check(" 403" in status, f"the page fetched by another site's script, token and all: 403 (got {status!r})")

        b = Browser()
        try:
            target = b.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            s = b.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                b.send(f"{domain}.enable", session=s)
            b.send("Emulation.setDeviceMetricsOverride", {
                "width": 1100, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=s)
            b.send("Page.navigate", {"url": url + "&scope_ms=5"}, session=s)
            b.wait_event("Page.loadEventFired")

            def state():
                v = b.send("Runtime.evaluate", {"expression": """JSON.stringify({
                    frames: hsdaqLive.frames, closed: hsdaqLive.closed, losses: hsdaqLive.losses,
                    markers: hsdaqLive.markers, scopes: hsdaqLive.scopes,
                    markRows: Array.from(document.querySelectorAll('#markers tbody tr')).map(r => r.textContent),
                    last: hsdaqLive.points[hsdaqLive.points.length - 1] || null,
                    labels: Array.from(document.querySelectorAll('.chan .label')).map(e => e.textContent),
                    lossRows: Array.from(document.querySelectorAll('#losses tbody tr')).map(r => r.textContent)})""",
                    "returnByValue": True}, session=s)["result"]["value"]
                return json.loads(v)

            time.sleep(1.0)
            a = state()
            time.sleep(2.0)
            z = state()
            check(z["labels"][:2] == ["accel_x [m/s^2]", "accel_y [m/s^2]"] or all("[" in l for l in z["labels"]),
                  f"channels shown with the profile's names and units: {z['labels']}")
            rate = (z["frames"] - a["frames"]) / 2.0
            # The server sends 20 a second; a loaded machine may deliver fewer
            # (dropped frames are counted on the page): the figure is printed,
            # the check is that frames keep coming.
            print(f"live_view: figure: {rate:.1f} frames/s on the page")
            check(rate >= 2, f"frames keep arriving: {rate:.1f} per second (>= 2)")
            check(a["last"] is not None and z["last"] is not None and z["last"]["t_s"] > a["last"]["t_s"]
                  and z["last"] != a["last"], "the traces move over two seconds "
                  f"(t {a['last'] and a['last']['t_s']} -> {z['last'] and z['last']['t_s']})")
            # The scope: a 1 kHz tone at 200 k scans/s is 200 scans a period.
            # Held on its rising edge, every capture shows the same phase:
            # through the middle at the trigger point, the peak (16000 counts)
            # a quarter period (50 scans) later, the trough at three quarters.
            shots = {x["first_scan"]: x for x in z["scopes"]}.values()
            held = [x for x in shots if x["trigger_at"] is not None and x["v0"]]
            check(len(held) >= 5, f"the scope took at least 5 triggered captures in 3 s: {len(held)} "
                  f"({[x['trigger'] for x in shots][:3]})")
            phases = [(x["v0"][x["trigger_at"] - 1], x["v0"][x["trigger_at"]], x["v0"][x["trigger_at"] + 50],
                       x["v0"][x["trigger_at"] + 150]) for x in held]
            check(all(a <= 0 < b and p > 15000 and t < -15000 for a, b, p, t in phases),
                  f"the same phase at the trigger point in every capture (before, at, +1/4, +3/4): {phases[:6]}")
            check(all(len(x["v0"]) == 1000 for x in held), "a 5 ms window is 1000 raw samples")
            peaks = [(x["peak_hz"][0], x["bin_hz"]) for x in held]
            check(all(abs(p - 1000.0) <= b for p, b in peaks),
                  f"the spectrum peaks within one bin of 1 kHz: {peaks[:3]}")
            # The window selector: 50 ms is 10,000 scans, sent as min/max
            # pairs; the page reconnects for it and keeps recording.
            b.send("Runtime.evaluate", {"expression": """(() => { const s = document.getElementById('scope-ms');
                s.value = '50'; s.dispatchEvent(new Event('change')); })()"""}, session=s)
            deadline, wide = time.time() + 10, None
            while time.time() < deadline and wide is None:
                time.sleep(0.3)
                v = b.send("Runtime.evaluate", {"expression": """JSON.stringify(hsdaqLive.scope &&
                    {w: hsdaqLive.scope.window_scans, mins: (hsdaqLive.scope.channels[0].min || []).length,
                     closed: hsdaqLive.closed})""", "returnByValue": True}, session=s)["result"]["value"]
                got = json.loads(v) if v else None
                wide = got if got and got["w"] == 10000 else None
            check(wide is not None and wide["mins"] == 500 and not wide["closed"],
                  f"a 50 ms window after the selector changed: 10000 scans as 500 min/max pairs, still live ({wide})")
            # A marker dropped by `acquire mark` shows on the page at its sample.
            mk = subprocess.run([acquire, "mark", str(run), "--text", "from the test", "--json"],
                                capture_output=True, text=True)
            check(mk.returncode == 0, f"acquire mark exit status {mk.returncode}: {mk.stderr.strip()}")
            marked = json.loads(mk.stdout)["at_seq"] if mk.returncode == 0 else None
            deadline = time.time() + 10
            while time.time() < deadline and not state()["markers"]:
                time.sleep(0.2)
            m = state()
            check([x["at_scan"] for x in m["markers"]] == [marked]
                  and any("from the test" in r for r in m["markRows"]),
                  f"the marker is on the page at seq {marked}: {m['markers']} {m['markRows']}")
            deadline = time.time() + 15
            while time.time() < deadline and not state()["losses"]:
                time.sleep(0.2)
            page = state()
            png = b.send("Page.captureScreenshot", {"format": "png"}, session=s)["data"]
            shot.parent.mkdir(parents=True, exist_ok=True)
            shot.write_bytes(base64.b64decode(png))
        finally:
            b.close()
        rc = rec.wait(timeout=60)
        check(rc == 0, f"acquire record exit status {rc}")
        manifest = json.loads((run / "manifest.json").read_text())
        gaps = [(g["at_seq"], g["lost"]) for g in manifest["gaps"]]
        shown = [(l["at_scan"], l["size"]) for l in page["losses"]]
        check(len(gaps) == 1 and shown == gaps,
              f"the injected loss is on the page with its size: page {shown}, manifest {gaps}")
        check(any(str(gaps[0][1]) in r for r in page["lossRows"]) if gaps else False,
              f"the loss table shows it: {page['lossRows']}")
        events = [(e["at_seq"], e["kind"], e["detail"]) for e in manifest.get("events", [])]
        check((marked, "marker", "from the test") in events,
              f"the marker is in the manifest at seq {marked}: {events}")
        errors = console_errors(b.events)
        check(not errors, f"no console errors ({errors})")
        v = subprocess.run([acquire, "verify", str(run)], capture_output=True, text=True)
        check(v.returncode == 0, f"the recording verifies ({v.stdout.strip().splitlines()[-1:] or v.stderr})")
    print(f"live_view: screenshot {shot}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
