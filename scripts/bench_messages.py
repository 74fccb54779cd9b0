#!/usr/bin/env python3
"""make bench, messages (issue 19): alice and bob, each with the shipped policy (`every: 30s`) on
one local drop, having trusted each other's key.
- Latency: both daemons running and bob's `connectxpert chat alice` open (which makes his agent
  look at alice's folder every second): the time from the start of alice's `message send` to the
  message's line in bob's view, for ROUNDS messages sent at random moments (target: median under
  1.5 s, p99 under 3 s).
- Throughput: QUEUED messages queued by `message send` with no agent running, then sent by one
  `run --once` of alice's and received by one of bob's (target: each at least 200 messages/s).
No other tool exchanges sealed messages through a file drop, so the targets are absolute, not
ratios to a peer."""
import os
import random
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_servers import ROOT, run, timed  # noqa: E402

ROUNDS, QUEUED = 100, 1000


class Pair:
    """alice and bob in folders of a temporary root, with the shipped policy, a drop of their own
    (`drop/` beside them) and each other's key trusted."""

    def __init__(self, binary):
        self.binary = binary
        self.root = tempfile.mkdtemp(prefix="cx-bench-messages-")
        os.makedirs(os.path.join(self.root, "drop"))
        with open(os.path.join(ROOT, "policies.yaml")) as f:
            shipped = f.read().replace("url: file:drop ", "url: file:../drop ")
        for user in ("alice", "bob"):
            os.makedirs(self.folder(user))
            with open(os.path.join(self.folder(user), "policies.yaml"), "w") as f:
                f.write(shipped.replace("  id: alice ", f"  id: {user} "))
            self.cli(user, "identity", "init")
            self.cli(user, "run", "--once")  # publishes the key card
        self.cli("alice", "peer", "trust", "bob")
        self.cli("bob", "peer", "trust", "alice")

    def folder(self, user):
        return os.path.join(self.root, user)

    def cli(self, user, *arguments):
        run([self.binary, *arguments], cwd=self.folder(user))

    def send(self, text):
        run([self.binary, "message", "send", "--to", "bob", text], cwd=self.folder("alice"))

    def daemon(self, user):
        log = open(os.path.join(self.root, f"{user}.log"), "w")
        return subprocess.Popen([self.binary, "run", "--log-level", "warning"], cwd=self.folder(user),
                                stdout=subprocess.DEVNULL, stderr=log)

    def close(self):
        shutil.rmtree(self.root, ignore_errors=True)


class ChatView:
    """bob's `connectxpert chat alice`, read line by line as it prints them."""

    def __init__(self, pair):
        self.process = subprocess.Popen([pair.binary, "chat", "alice"], cwd=pair.folder("bob"),
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.pending = b""

    def wait_for(self, text, timeout=30.0):
        """Blocks until a line holding `text` is printed; returns the monotonic time it was read."""
        wanted = text.encode()
        deadline = time.monotonic() + timeout
        while True:
            lines = self.pending.split(b"\n")
            self.pending = lines.pop()
            if any(wanted in line for line in lines):
                return time.monotonic()
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([self.process.stdout], [], [], max(remaining, 0))
            if not ready:
                raise TimeoutError(f"the chat view did not show {text!r}")
            chunk = os.read(self.process.stdout.fileno(), 65536)
            if not chunk:
                raise RuntimeError("the chat view ended")
            self.pending += chunk

    def close(self):
        self.process.stdin.close()  # Ctrl-D
        self.process.wait(10)


def latency(binary):
    pair = Pair(binary)
    daemons = [pair.daemon("alice"), pair.daemon("bob")]
    try:
        view = ChatView(pair)
        view.wait_for("Ctrl-D ends it")
        time.sleep(1)
        samples = []
        for index in range(ROUNDS):
            time.sleep(random.uniform(0, 1))  # any moment of bob's one-second poll
            start = time.monotonic()
            pair.send(f"latency probe {index}.")
            samples.append(view.wait_for(f"alice: latency probe {index}.") - start)
        view.close()
    finally:
        for daemon in daemons:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(30)
        pair.close()
    samples.sort()
    median, p99 = statistics.median(samples), samples[int(len(samples) * 0.99) - 1]
    ok = median < 1.5 and p99 < 3
    print(f"\nmessage send to the line in the peer's chat view, {ROUNDS} messages, both daemons, local drop")
    print(f"  median {median:.2f} s, p99 {p99:.2f} s, max {samples[-1]:.2f} s (bob's poll: every 1 s "
          f"while the view is open); target median < 1.5 s and p99 < 3 s: {'met' if ok else 'NOT MET'}")
    return ok


def throughput(binary):
    pair = Pair(binary)
    try:
        for index in range(QUEUED):
            pair.send(f"queued message {index}")
        batch = [binary, "run", "--once", "--log-level", "warning"]
        sent = timed(batch, cwd=pair.folder("alice"))
        received = timed(batch, cwd=pair.folder("bob"))
        listed = subprocess.run([binary, "message", "list", "--peer", "alice"], cwd=pair.folder("bob"),
                                check=True, capture_output=True, text=True).stdout
        count = sum(" alice → bob " in line for line in listed.splitlines())
    finally:
        pair.close()
    print(f"\n{QUEUED} queued messages in one run --once each (messages/s, higher is better)   CPU s   peak RSS MiB")
    ok = count == QUEUED
    for name, timing in (("sent (alice)", sent), ("received (bob)", received)):
        rate = QUEUED / timing.elapsed
        ok = ok and rate >= 200
        print(f"  {name:40}{rate:10.0f}{timing.cpu:8.2f}{timing.rss / 1024:15.0f}   "
              f"target 200: {'met' if rate >= 200 else 'NOT MET'}")
    print(f"  bob lists {count} of the {QUEUED}" + ("" if count == QUEUED else ": NOT ALL ARRIVED"))
    return ok


def main():
    binary = sys.argv[1]
    print("== Messages (issue 19): the shipped policy on a local drop")
    met = [latency(binary), throughput(binary)]
    if not all(met):
        print("targets not met: " + ", ".join(name for name, ok in zip(("latency", "throughput"), met) if not ok))


if __name__ == "__main__":
    main()
