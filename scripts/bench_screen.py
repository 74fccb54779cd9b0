#!/usr/bin/env python3
"""make bench, the screen share (issue 7): the same RFB client against `connectxpert screen share`
and against x11vnc, on one Xvfb 1920x1080 display showing a desktop-like picture, in one run.
Prints full-frame updates per second, the latency from a small screen change to the incremental
update carrying it, the bytes of one full frame and the agent's peak RSS, for a client asking for
ZRLE only and for a noVNC-like one (issue 25: Tight without JPEG, CopyRect, Hextile, Raw).

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


ZRLE, HEXTILE, TIGHT, RAW, COPYRECT = 16, 5, 7, 0, 1
# What noVNC 1.3 decodes, less its JPEG quality pseudo-encodings: Tight then is lossless.
NOVNC_LIKE = [TIGHT, COPYRECT, HEXTILE, RAW]


class Viewer:
    """A minimal RFB 3.8 client (no authentication) that asks for `encodings` (ZRLE only unless told)
    and counts bytes: it reads each rectangle's length, decoding nothing."""

    def __init__(self, port, encodings=(ZRLE,)):
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
        self.sock.sendall(struct.pack(">BxH", 2, len(encodings)) + b"".join(struct.pack(">i", e) for e in encodings))

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
            if encoding == ZRLE:
                length = struct.unpack(">I", self.recv(4))[0]
                self.recv(length)
                size += 4 + length
            elif encoding == HEXTILE:
                size += self.hextile(w, h)
            elif encoding == TIGHT:
                size += self.tight(w, h)
            elif encoding == COPYRECT:
                self.recv(4)
                size += 4
            elif encoding == 0:
                self.recv(w * h * 4)
                size += w * h * 4
            elif encoding in (-223, -224):
                pass
            else:
                raise RuntimeError(f"unexpected encoding {encoding}")
            rects.append((x, y, w, h))
        return rects, size

    def hextile(self, w, h):
        """Reads a Hextile rectangle (RFC 6143 7.7.4) in 32 bpp; returns its bytes."""
        size = 0
        for ty in range(0, h, 16):
            for tx in range(0, w, 16):
                tw, th = min(16, w - tx), min(16, h - ty)
                kind = self.recv(1)[0]
                size += 1
                if kind & 1:
                    size += len(self.recv(tw * th * 4))
                    continue
                size += len(self.recv(((kind >> 1) & 1) * 4 + ((kind >> 2) & 1) * 4))
                if kind & 8:
                    count = self.recv(1)[0]
                    size += 1 + len(self.recv(count * (6 if kind & 16 else 2)))
        return size

    def compact_length(self):
        value, size = 0, 0
        for shift in (0, 7, 14):
            byte = self.recv(1)[0]
            size += 1
            value |= (byte & (0x7F if shift < 14 else 0xFF)) << shift
            if not byte & 0x80 or shift == 14:
                break
        return value, size

    def tight(self, w, h):
        """Reads a Tight rectangle (3-byte TPIXELs: 32 bpp, depth 24); returns its bytes."""
        control = self.recv(1)[0]
        kind, size = control >> 4, 1
        if kind == 8:  # fill
            return size + len(self.recv(3))
        if kind in (9, 10):  # JPEG, PNG
            length, extra = self.compact_length()
            return size + extra + len(self.recv(length))
        filter_id, row = 0, w * 3
        if control & 0x40:
            filter_id = self.recv(1)[0]
            size += 1
        if filter_id == 1:  # palette
            colours = self.recv(1)[0] + 1
            size += 1 + len(self.recv(colours * 3))
            row = (w + 7) // 8 if colours == 2 else w
        data = row * h
        if data < 12:
            return size + len(self.recv(data))
        length, extra = self.compact_length()
        return size + extra + len(self.recv(length))

    def close(self):
        self.sock.close()


def measure(port, display_name, encodings=(ZRLE,)):
    viewer = Viewer(port, encodings)
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
        results["connectxpert"] = measure(port, name)
        results["connectxpert, noVNC-like"] = measure(port, name, NOVNC_LIKE)
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
        results["x11vnc, noVNC-like"] = measure(port, name, NOVNC_LIKE)
        x11vnc.terminate()
        x11vnc.wait()
    finally:
        painter.terminate()
        subprocess.run([xvfb, "stop", os.path.join(work, "x")])

    missed = []
    for client, suffix, frames_target in [("the same client (ZRLE only)", "", ">= 1.0"),
                                          ("a noVNC-like client (Tight, CopyRect, Hextile, Raw; no JPEG: "
                                           "x11vnc's Tight is lossless, the agent's Hextile)", ", noVNC-like", "")]:
        agent, peer = results["connectxpert" + suffix], results["x11vnc" + suffix]
        print(f"\nscreen share, one Xvfb 1920x1080 display, {client}")
        print(f"  {'':28}{'connectxpert':>14}{'x11vnc':>12}{'ratio':>8}  target")
        rows = [("full frames per second", agent[0], peer[0], agent[0] / peer[0], frames_target, agent[0] >= peer[0]),
                ("change -> update, median ms", agent[1], peer[1], agent[1] / peer[1], "<= 1.0", agent[1] <= peer[1]),
                ("change -> update, max ms", agent[2], peer[2], agent[2] / peer[2], "", True),
                ("bytes of one full frame", agent[3], peer[3], agent[3] / peer[3], "<= 1.2",
                 agent[3] <= 1.2 * peer[3])]
        for title, ours, theirs, ratio, target, met in rows:
            print(f"  {title:28}{ours:14.1f}{theirs:12.1f}{ratio:8.2f}  {target} "
                  f"{'' if not target else 'met' if met else 'NOT MET'}")
            if target and not met:
                missed.append(title + suffix)
    print(f"  peak RSS of the agent: {rss:.0f} MiB (target under 128 MiB): {'met' if rss < 128 else 'NOT MET'}")
    if rss >= 128:
        missed.append("peak RSS")
    if missed:
        print("targets not met: " + ", ".join(missed))


if __name__ == "__main__":
    main()
