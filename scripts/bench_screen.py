#!/usr/bin/env python3
"""make bench, the screen share (issue 7): the same RFB client against `connectxpert screen share`
and against x11vnc, on one Xvfb 1920x1080 display showing a desktop-like picture, in one run.
Prints full-frame updates per second, the latency from a small screen change to the incremental
update carrying it, the ZRLE bytes of one full frame, and the agent's peak RSS.

Run with the screen-test tools' python (scripts/screen-test/python-tools): it draws with
python-xlib."""
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

from Xlib import X, display as xdisplay

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
XHELPER = os.path.join(ROOT, "scripts/screen-test/xhelper.py")
FRAMES, CHANGES = 40, 30


class Viewer:
    """A minimal RFB 3.8 client (no authentication) that asks for ZRLE only and counts bytes."""

    def __init__(self, port):
        deadline = time.time() + 10
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", port))
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.recv(12)
        self.sock.sendall(b"RFB 003.008\n")
        count = self.recv(1)[0]
        types = self.recv(count)
        if 1 not in types:
            raise RuntimeError(f"the server wants authentication ({list(types)})")
        self.sock.sendall(b"\x01")
        if struct.unpack(">I", self.recv(4))[0] != 0:
            raise RuntimeError("refused")
        self.sock.sendall(b"\x01")
        self.width, self.height = struct.unpack(">HH", self.recv(4))
        self.recv(16)
        self.recv(struct.unpack(">I", self.recv(4))[0])
        native = struct.pack(">BBBBHHHBBBxxx", 32, 24, 0, 1, 255, 255, 255, 16, 8, 0)
        self.sock.sendall(b"\x00\x00\x00\x00" + native)
        self.sock.sendall(struct.pack(">BxHi", 2, 1, 16))

    def recv(self, count):
        data = bytearray()
        while len(data) < count:
            chunk = self.sock.recv(count - len(data))
            if not chunk:
                raise RuntimeError("the server closed the connection")
            data += chunk
        return bytes(data)

    def request(self, incremental, x=0, y=0, w=None, h=None):
        self.sock.sendall(struct.pack(">BBHHHH", 3, 1 if incremental else 0, x, y, w or self.width, h or self.height))

    def update(self):
        """Reads one FramebufferUpdate; returns its rectangles (x, y, w, h) and its bytes."""
        while True:
            kind = self.recv(1)[0]
            if kind == 0:
                break
            if kind == 2:
                continue
            if kind == 3:
                self.recv(3)
                self.recv(struct.unpack(">I", self.recv(4))[0])
                continue
            raise RuntimeError(f"unexpected server message {kind}")
        self.recv(1)
        count = struct.unpack(">H", self.recv(2))[0]
        size, rects = 4, []
        for _ in range(count):
            x, y, w, h, encoding = struct.unpack(">HHHHi", self.recv(12))
            size += 12
            if encoding == 16:
                length = struct.unpack(">I", self.recv(4))[0]
                self.recv(length)
                size += 4 + length
            elif encoding == 0:
                self.recv(w * h * 4)
                size += w * h * 4
            elif encoding in (-223, -224):
                pass
            else:
                raise RuntimeError(f"unexpected encoding {encoding}")
            rects.append((x, y, w, h))
        return rects, size

    def close(self):
        self.sock.close()


def measure(port, display_name):
    viewer = Viewer(port)
    viewer.request(False)
    first_rects, first_bytes = viewer.update()
    start = time.monotonic()
    for _ in range(FRAMES):
        viewer.request(False)
        viewer.update()
    full_rate = FRAMES / (time.monotonic() - start)

    d = xdisplay.Display(display_name)
    screen = d.screen()
    window = screen.root.create_window(900, 500, 40, 20, 0, screen.root_depth, X.InputOutput, X.CopyFromParent,
                                       override_redirect=True, background_pixel=0)
    window.map()
    d.sync()
    time.sleep(0.5)
    viewer.request(True)  # anything the new window changed
    viewer.update()
    latencies = []
    for index in range(CHANGES):
        viewer.request(True)
        time.sleep(0.1)  # the request waits in the server
        colour = 0xff0000 if index % 2 else 0x00ff00
        gc = window.create_gc(foreground=colour)
        window.fill_rectangle(gc, 0, 0, 40, 20)
        d.sync()
        changed = time.monotonic()
        while True:
            rects, _ = viewer.update()
            if any(x <= 900 < x + w and y <= 500 < y + h for x, y, w, h in rects):
                break
            viewer.request(True)
        latencies.append((time.monotonic() - changed) * 1000)
    window.destroy()
    d.sync()
    viewer.close()
    return full_rate, statistics.median(latencies), max(latencies), first_bytes


def wait_port(port):
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


def main():
    binary = sys.argv[1]
    work = tempfile.mkdtemp(prefix="cx-bench-screen-")
    number = 300 + os.getpid() % 500
    name = f":{number}"
    xvfb = os.path.join(ROOT, "scripts/test-servers/xvfb")
    subprocess.run([xvfb, "start", os.path.join(work, "x"), str(number), "1920x1080"], check=True)
    painter = subprocess.Popen([sys.executable, XHELPER, "desktop", name], stdout=subprocess.PIPE)
    painter.stdout.readline()
    results = {}
    try:
        with open(os.path.join(work, "policies.yaml"), "w") as f:
            f.write("identity:\n  id: bench\nremotes:\n  drop:\n    url: file:drop\njobs:\n  screen_share:\n"
                    "    auth: none\n    once: false\n")
        port = 5900 + number % 1000
        agent = subprocess.Popen(["/usr/bin/time", "-f", "%M", binary, "screen", "share", "--display", name,
                                  "--listen", f"127.0.0.1:{port}", "--log-level", "error"],
                                 cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wait_port(port)
        results["connectxpert screen share"] = measure(port, name)
        subprocess.run(["pkill", "-TERM", "-P", str(agent.pid)])  # the agent, not /usr/bin/time
        errors = agent.communicate()[1]
        try:
            rss = int(errors.strip().splitlines()[-1]) / 1024
        except (IndexError, ValueError):
            raise RuntimeError(f"the agent's peak RSS is unknown: {errors[-2000:]}")

        port += 1
        x11vnc = subprocess.Popen(["x11vnc", "-display", name, "-rfbport", str(port), "-localhost", "-nopw", "-shared",
                                   "-forever", "-quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(port)
        time.sleep(1)
        results["x11vnc"] = measure(port, name)
        x11vnc.terminate()
        x11vnc.wait()
    finally:
        painter.terminate()
        subprocess.run([xvfb, "stop", os.path.join(work, "x")])

    agent, peer = results["connectxpert screen share"], results["x11vnc"]
    print("\nscreen share, one Xvfb 1920x1080 display, the same client (ZRLE only)")
    print(f"  {'':28}{'connectxpert':>14}{'x11vnc':>12}{'ratio':>8}  target")
    rows = [("full frames per second", agent[0], peer[0], agent[0] / peer[0], ">= 1.0", agent[0] >= peer[0]),
            ("change -> update, median ms", agent[1], peer[1], agent[1] / peer[1], "<= 1.0", agent[1] <= peer[1]),
            ("change -> update, max ms", agent[2], peer[2], agent[2] / peer[2], "", True),
            ("bytes of one full frame", agent[3], peer[3], agent[3] / peer[3], "<= 1.2", agent[3] <= 1.2 * peer[3])]
    missed = []
    for title, ours, theirs, ratio, target, met in rows:
        print(f"  {title:28}{ours:14.1f}{theirs:12.1f}{ratio:8.2f}  {target} {'' if not target else 'met' if met else 'NOT MET'}")
        if target and not met:
            missed.append(title)
    print(f"  peak RSS of the agent: {rss:.0f} MiB (target under 128 MiB): {'met' if rss < 128 else 'NOT MET'}")
    if rss >= 128:
        missed.append("peak RSS")
    if missed:
        print("targets not met: " + ", ".join(missed))


if __name__ == "__main__":
    main()
