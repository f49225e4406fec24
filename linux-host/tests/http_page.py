#!/usr/bin/env python3
"""Plays zerocast's page in headless Chromium and reports what its players did.

Usage: http_page.py URL SCREENSHOT.png SECONDS

Drives Chromium over the DevTools protocol on a pipe (--remote-debugging-pipe: JSON messages
ending in NUL, commands on fd 3, answers on fd 4), so nothing but Python and Chromium is needed.
Prints one JSON object: per poll (every 250 ms) the players' state, reported delay and media time;
then saves a screenshot. Exits non-zero only when Chromium cannot be driven.
"""
import base64
import json
import os
import subprocess
import sys
import tempfile
import time

url, screenshot, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])

to_chrome_r, to_chrome_w = os.pipe()
from_chrome_r, from_chrome_w = os.pipe()
profile = tempfile.mkdtemp(prefix="zerocast-chromium-")
flags = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required", "--remote-debugging-pipe",
    "--user-data-dir=" + profile, "--window-size=900,700", "about:blank",
]


def child_fds():
    # Chromium reads commands from fd 3 and writes answers to fd 4.
    os.dup2(to_chrome_r, 3)
    os.dup2(from_chrome_w, 4)


chrome = subprocess.Popen(["chromium"] + flags, preexec_fn=child_fds, pass_fds=(3, 4),
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
os.close(to_chrome_r)
os.close(from_chrome_w)
out = os.fdopen(to_chrome_w, "wb")
inp = os.fdopen(from_chrome_r, "rb")
buffer = b""
next_id = 0


def call(method, params=None, session=None, limit=20.0):
    global buffer, next_id
    next_id += 1
    msg = {"id": next_id, "method": method, "params": params or {}}
    if session:
        msg["sessionId"] = session
    out.write(json.dumps(msg).encode() + b"\0")
    out.flush()
    deadline = time.time() + limit
    while time.time() < deadline:
        while b"\0" in buffer:
            raw, buffer = buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
        chunk = os.read(inp.fileno(), 65536)
        if not chunk:
            raise RuntimeError("chromium closed the pipe")
        buffer += chunk
    raise RuntimeError(f"{method}: no answer in {limit} s")


PROBE = """JSON.stringify([...document.querySelectorAll('.player')].map(p => ({
  state: p.dataset.state || null,
  delay: p.dataset.delay === undefined ? null : Number(p.dataset.delay),
  time: p.querySelector('audio').currentTime,
  startup_ms: p.dataset.startupMs === undefined ? null : Number(p.dataset.startupMs),
  src: p.querySelector('audio').currentSrc,
  info: p.querySelector('span').textContent,
})))"""

try:
    target = call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    call("Page.enable", session=session)
    call("Page.navigate", {"url": url}, session=session)
    polls = []
    start = time.time()
    while time.time() - start < seconds:
        time.sleep(0.25)
        value = call("Runtime.evaluate", {"expression": PROBE, "returnByValue": True},
                     session=session)["result"].get("value", "[]")
        polls.append({"t": round(time.time() - start, 2), "players": json.loads(value)})
    shot = call("Page.captureScreenshot", {"format": "png"}, session=session)
    with open(screenshot, "wb") as f:
        f.write(base64.b64decode(shot["data"]))
    print(json.dumps({"polls": polls}))
finally:
    try:
        call("Browser.close", limit=5)
    except Exception:
        pass
    try:
        chrome.wait(timeout=5)
    except subprocess.TimeoutExpired:
        chrome.kill()
