#!/usr/bin/env python3
"""What the live view costs the recorder.

    scripts/bench-live.py ACQUIRE [--rounds 3] [--seconds 4] [--dir /dev/shm]

The recorder's capacity — scans per second through drain, transpose,
encoding and writing, with the simulator unpaced (it produces as fast as the
recorder drains, so this is the ceiling of the loss-free rate) — measured
without and with `--live` and a page attached (a WebSocket client reading
every frame), alternating, `--rounds` times each; medians and their ratio in
one run. Writes to tmpfs with no codec so the disk does not hide the
pipeline; 4 ch x i16 at 64 KiB blocks. Also reports the CPU time of the live
view's own threads (broadcaster, HTTP, WebSocket sender) per second of
recording. Prints one JSON object. (`acquire bench` measures the tap's cost
on the drain alone: the stage "drain + transpose + live tap".)
"""
import argparse
import base64
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time


def attach(url, stop, counts):
    """A minimal WebSocket client (stdlib): handshake, then read frames."""
    hostport, query = url.split("//", 1)[1].split("/", 1)
    host, port = hostport.rsplit(":", 1)
    s = socket.create_connection((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /ws{query} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    s.settimeout(0.5)
    while not stop.is_set():
        try:
            data = s.recv(1 << 16)
        except socket.timeout:
            continue
        except OSError:
            break
        if not data:
            break
        counts["bytes"] += len(data)
    s.close()


def thread_cpu(pid, seen):
    """Records utime+stime (s) of the process' threads, by thread name."""
    tick = os.sysconf("SC_CLK_TCK")
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
            name = stat[stat.index("(") + 1:stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2:].split()
            seen[(name, tid)] = (int(fields[11]) + int(fields[12])) / tick
    except (FileNotFoundError, ProcessLookupError, ValueError):
        pass


def once(acquire, live, seconds, d):
    out = os.path.join(d, f"bench-live-{os.getpid()}")
    cmd = [acquire, "record", "--rate", "100M", "--channels", "4", "--block-bytes", "64KiB",
           "--buffer-bytes", "64MiB", "--unpaced", "--duration", f"{seconds}s", "--compression", "none",
           "--out", out, "--json"]
    if live:
        cmd.append("--live")
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stop, counts, t = threading.Event(), {"bytes": 0}, None
    if live:
        for line in p.stderr:
            if "live view at" in line:
                url = line.split("live view at", 1)[1].strip()
                t = threading.Thread(target=attach, args=(url, stop, counts), daemon=True)
                t.start()
                break
    threading.Thread(target=p.stderr.read, daemon=True).start()
    seen = {}
    def sample():
        while p.poll() is None:
            thread_cpu(p.pid, seen)
            time.sleep(0.2)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    summary = json.loads(p.stdout.read())
    p.wait()
    sampler.join()
    counts["live_threads_cpu_s"] = sum(v for (name, _), v in seen.items() if name.startswith(("hsdaq-live", "hsdaq-http")))
    counts["seconds"] = summary["seconds"]
    stop.set()
    if t:
        t.join()
    subprocess.run(["rm", "-rf", out])
    return summary["scans_per_s"], counts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("acquire")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--dir", default="/dev/shm")
    a = ap.parse_args()
    plain, live, ws_bytes, live_cpu = [], [], [], []
    for r in range(a.rounds):
        for with_live in (False, True):
            rate, got = once(a.acquire, with_live, a.seconds, a.dir)
            (live if with_live else plain).append(rate)
            if with_live:
                ws_bytes.append(got["bytes"])
                live_cpu.append(100 * got["live_threads_cpu_s"] / got["seconds"])
            print(f"bench-live: round {r + 1}/{a.rounds} {'with page' if with_live else 'no page  '}: "
                  f"{rate / 1e6:.2f} M scans/s" + (f" ({got['bytes']} B of frames received, live view threads "
                                                  f"{live_cpu[-1]:.2f} % of a core)" if with_live else ""),
                  file=sys.stderr)
    m0, m1 = statistics.median(plain), statistics.median(live)
    print(json.dumps({"scans_per_s_without": m0, "scans_per_s_with_page": m1,
                      "ratio": m1 / m0, "cost_percent": 100 * (1 - m1 / m0),
                      "rounds": a.rounds, "seconds": a.seconds,
                      "live_threads_percent_of_a_core": statistics.median(live_cpu),
                      "without": plain, "with_page": live, "frame_bytes_received": ws_bytes}))


if __name__ == "__main__":
    main()
