#!/usr/bin/env python3
"""A bounded local load test of `restore serve` (a benchmark, not run by CI): N clients (default 50) submit
small ×4 jobs to 127.0.0.1 for a fixed time (default 120 s). Each client uploads its own solid-colour 8×8
photo, so a result can be traced to its job: the result must be 32×32 with the client's colour (no lost or
mixed-up job). Every answer must be 201 (queued) or 429 (queue full, with the JSON error), never a 5xx or a
dropped connection; the server's resident memory is sampled once a second and must stay flat.

    python3 Tools/bench/load_serve.py [--clients 50] [--seconds 120] [--binary .build/release/restore]

Standard library only (urllib, threading); prints a summary and writes it as JSON with --json FILE."""
import argparse
import json
import re
import struct
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
import zlib

parser = argparse.ArgumentParser()
parser.add_argument("--clients", type=int, default=50)
parser.add_argument("--seconds", type=float, default=120)
parser.add_argument("--binary", default=".build/release/restore")
parser.add_argument("--json")
args = parser.parse_args()


def png(width, height, rgb):
    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def decode_png_rgb(data):
    """Mean colour of an 8-bit RGB PNG (what the server writes for these inputs)."""
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * 3
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - 3] if i >= 3 else 0
            b, c = prev[i], prev[i - 3] if i >= 3 else 0
            if f == 1: line[i] = (line[i] + a) & 255
            elif f == 2: line[i] = (line[i] + b) & 255
            elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line); prev = line
    n = width * height
    return width, height, [sum(r[k::3][j] for r in rows for j in range(width)) / n for k in range(3)]


def form(image, job):
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"c.png\"\r\nContent-Type: image/png\r\n\r\n").encode() + image
    body += f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"job\"\r\n\r\n{json.dumps(job)}\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


server = subprocess.Popen([args.binary, "serve", "--port", "0", "--queue", "8", "--keep-minutes", "5"], stderr=subprocess.PIPE, text=True)
base = None
while base is None:
    m = re.search(r"(http://127\.0\.0\.1:\d+)", server.stderr.readline())
    base = m.group(1) if m else None
threading.Thread(target=lambda: [None for _ in server.stderr], daemon=True).start()

lock = threading.Lock()
counts = {"201": 0, "429": 0, "other": 0, "done": 0, "mixed_up": 0, "failed": 0, "errors": []}
rss = []
stop = time.time() + args.seconds


def client(index):
    colour = ((index * 37) % 200 + 28, (index * 91) % 200 + 28, (index * 53) % 200 + 28)
    image = png(8, 8, colour)
    while time.time() < stop:
        body, kind = form(image, {"task": "upscale", "scale": 4, "seed": index})
        try:
            with urllib.request.urlopen(urllib.request.Request(base + "/jobs", data=body, headers={"Content-Type": kind}), timeout=60) as r:
                status, answer = r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            status, answer = e.code, json.loads(e.read() or b"{}")
        except Exception as e:  # a dropped connection is a failure of the test
            with lock: counts["errors"].append(repr(e))
            continue
        with lock:
            counts[str(status) if status in (201, 429) else "other"] += 1
            if status not in (201, 429):
                counts["errors"].append("HTTP %d: %s" % (status, answer.get("error", "")))
        if status == 429:
            if "queue is full" not in answer.get("error", ""):
                with lock: counts["errors"].append("429 without its message")
            time.sleep(0.5)
            continue
        if status != 201:
            continue
        job = answer["id"]
        while True:
            with urllib.request.urlopen(base + "/jobs/" + job, timeout=60) as r:
                state = json.loads(r.read())
            if state["state"] in ("done", "failed", "cancelled"):
                break
            time.sleep(0.2)
        if state["state"] != "done":
            with lock: counts["failed"] += 1
            continue
        with urllib.request.urlopen(base + state["result"], timeout=60) as r:
            w, h, mean = decode_png_rgb(r.read())
        ok = (w, h) == (32, 32) and all(abs(m - c) < 40 for m, c in zip(mean, colour))
        with lock:
            counts["done"] += 1
            counts["mixed_up"] += 0 if ok else 1


def sample():
    while time.time() < stop + 1:
        with open(f"/proc/{server.pid}/status") as f:
            rss.append(int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) // 1024)
        time.sleep(1)


threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)] + [threading.Thread(target=sample)]
started = time.time()
for t in threads: t.start()
for t in threads: t.join()
server.terminate()
server.wait(timeout=30)
tenth = max(1, len(rss) // 10)
summary = {"clients": args.clients, "seconds": round(time.time() - started, 1), **{k: v for k, v in counts.items() if k != "errors"},
           "connection_errors": len(counts["errors"]), "rss_mib_first_10pct": round(sum(rss[:tenth]) / tenth, 1),
           "rss_mib_last_10pct": round(sum(rss[-tenth:]) / tenth, 1), "rss_mib_max": max(rss)}
print(json.dumps(summary, indent=1))
if counts["errors"]: print("first errors:", counts["errors"][:3])
if args.json:
    open(args.json, "w").write(json.dumps(summary, indent=1) + "\n")
ok = counts["other"] == 0 and counts["mixed_up"] == 0 and counts["failed"] == 0 and not counts["errors"]
raise SystemExit(0 if ok else 1)
