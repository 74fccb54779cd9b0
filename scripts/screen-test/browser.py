"""noVNC in headless Chromium (Debian's chromium), driven over the DevTools protocol, for the
screen-share tests (run with the venv's python from scripts/screen-test/python-tools).

  novnc URL [--password PW] [--expect SCREEN.png] [--click X,Y] [--type TEXT]
      opens URL (noVNC's vnc.html; autoconnect is added) and waits for noVNC's status line; prints
      "status: TEXT". Once connected: with --expect, waits until the canvas equals the picture
      pixel for pixel (every pixel opaque) and prints "same", or the number of pixels that differ
      after 20 s; then clicks canvas point X,Y and types TEXT, and prints "done".
"""
import base64
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import websocket
from PIL import Image


class Browser:
    """A headless Chromium with a fresh profile and one page, spoken to over its DevTools socket."""

    def __init__(self):
        self.profile = tempfile.mkdtemp(prefix="cx-chromium-")
        self.process = subprocess.Popen(
            ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--remote-debugging-port=0", f"--user-data-dir={self.profile}", "--window-size=1600,1200",
             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.monotonic() + 30
        while not (os.path.exists(port_file) and open(port_file).read().count("\n") >= 1):
            if time.monotonic() > deadline:
                sys.exit("chromium did not start")
            time.sleep(0.05)
        port = open(port_file).read().split("\n")[0]
        pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
        page = next(p for p in pages if p["type"] == "page")
        self.socket = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30)
        self.next_id = 0

    def call(self, method, **params):
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def close(self):
        self.process.kill()
        self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


CANVAS = "document.querySelector('#noVNC_container canvas')"


def canvas_picture(browser):
    data = browser.evaluate(f"{CANVAS} ? {CANVAS}.toDataURL('image/png') : null")
    if not data:
        return None
    return Image.open(io.BytesIO(base64.b64decode(data.split(",", 1)[1]))).convert("RGBA")


def differing(canvas, expected):
    """How many pixels differ, an unset (transparent) pixel counting as different."""
    if canvas is None or canvas.size != expected.size:
        return expected.size[0] * expected.size[1]
    want = expected.convert("RGB").tobytes()
    got = canvas.tobytes()
    return sum(1 for index in range(0, len(want) // 3)
               if got[index * 4 + 3] != 255 or got[index * 4:index * 4 + 3] != want[index * 3:index * 3 + 3])


def novnc(args):
    url, options = args[0], dict(zip(args[1::2], args[2::2]))
    separator = "&" if "?" in url else "?"
    url += f"{separator}autoconnect=true&reconnect=false&resize=off"
    if "--password" in options:
        url += "&password=" + urllib.request.quote(options["--password"])
    browser = Browser()
    try:
        browser.call("Page.navigate", url=url)
        deadline = time.monotonic() + 30
        status = ""
        while time.monotonic() < deadline:
            status = browser.evaluate("(document.getElementById('noVNC_status') || {}).textContent || ''") or ""
            if status and not status.startswith("Connecting"):
                break
            time.sleep(0.1)
        print(f"status: {status}", flush=True)
        if not status.startswith("Connected"):
            return
        if "--expect" in options:
            expected = Image.open(options["--expect"])
            count = None
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                count = differing(canvas_picture(browser), expected)
                if count == 0:
                    break
                time.sleep(0.2)
            print("same" if count == 0 else f"{count} pixels differ", flush=True)
        rect = browser.evaluate(f"(r => [r.left, r.top])({CANVAS}.getBoundingClientRect())")
        if "--click" in options:
            # The canvas may sit at half a pixel (it is centred); events land on whole pixels.
            x, y = (int(v) for v in options["--click"].split(","))
            x, y = math.ceil(rect[0]) + x, math.ceil(rect[1]) + y
            for kind in ["mouseMoved", "mousePressed", "mouseReleased"]:
                browser.call("Input.dispatchMouseEvent", type=kind, x=x, y=y,
                             button="left", clickCount=1)
        if "--type" in options:
            browser.evaluate(f"{CANVAS}.focus()")
            for character in options["--type"]:
                browser.call("Input.dispatchKeyEvent", type="keyDown", key=character, text=character,
                             unmodifiedText=character)
                browser.call("Input.dispatchKeyEvent", type="keyUp", key=character)
        time.sleep(0.5)  # noVNC sends input as it comes; let the last of it leave the page
        print("done", flush=True)
    finally:
        browser.close()


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] != "novnc":
        sys.exit(__doc__)
    novnc(sys.argv[2:])
