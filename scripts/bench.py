#!/usr/bin/env python3
"""make bench: detection-to-upload-start latency of the daemon (issue target: median < 10 ms,
p99 < 50 ms), measured from outside: the time from a file's rename into the outbox to the creation
of its temporary file in the drop, seen through inotify on the drop's folder of uploads in progress
(`.connectxpert-temp`, the default `temp_name`). The same measurement
is made for a peer, an `inotifywait -m | cp` loop, on the same machine in the same run."""
import ctypes
import os
import select
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time

IN_CREATE = 0x100
IN_MOVED_TO = 0x80
ROUNDS = 300

libc = ctypes.CDLL("libc.so.6", use_errno=True)


def watch(folder, mask):
    fd = libc.inotify_init1(os.O_NONBLOCK)
    if fd < 0 or libc.inotify_add_watch(fd, folder.encode(), mask) < 0:
        sys.exit(f"inotify: {os.strerror(ctypes.get_errno())}")
    return fd


def wait_for_create(fd, timeout=5.0, hidden=True):
    """Blocks until a file appears in the watched folder, under a hidden (temporary) name or a final
    one as asked; returns the monotonic time."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no file appeared in the drop")
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            now = time.monotonic()
            data = os.read(fd, 65536)
            offset = 0
            while offset < len(data):
                _, event, _, length = struct.unpack_from("iIII", data, offset)
                name = data[offset + 16:offset + 16 + length].rstrip(b"\0")
                offset += 16 + length
                if name.startswith(b".") == hidden:
                    return now


def measure(outbox, target, stage, hidden=True):
    """Median and p99 milliseconds from a file's rename into `outbox` to its appearance in `target`,
    under a temporary name (`hidden`: the upload started) or its final name."""
    fd = watch(target, IN_CREATE | IN_MOVED_TO)
    samples = []
    for index in range(ROUNDS):
        staged = os.path.join(stage, f"f{index}.txt")
        with open(staged, "wb") as f:
            f.write(b"x" * 4096)
        os.rename(staged, os.path.join(outbox, f"f{index}.txt"))
        start = time.monotonic()
        samples.append((wait_for_create(fd, hidden=hidden) - start) * 1000)
        time.sleep(0.01)
    os.close(fd)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def wait_for_log(path, text, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(path) as f:
            if text in f.read():
                return
        time.sleep(0.05)
    sys.exit(f"the agent did not start: {open(path).read()}")


def main():
    binary = sys.argv[1]
    root = tempfile.mkdtemp(prefix="cx-bench-")
    try:
        drop, stage = os.path.join(root, "drop"), os.path.join(root, "stage")
        uploads = os.path.join(drop, ".connectxpert-temp")
        os.makedirs(uploads)
        os.makedirs(stage)
        policy = os.path.join(root, "policies.yaml")
        with open(policy, "w") as f:
            f.write("identity:\n  id: alice\nremotes:\n  drop:\n    url: file:drop\n"
                    "outbox:\n  - remote: drop\n")
        outbox = os.path.join(root, "spool/outbox/bob")
        os.makedirs(outbox)
        log = os.path.join(root, "agent.log")
        with open(log, "w") as err:
            agent = subprocess.Popen([binary, "run", "--policy", policy, "--log-level", "warning"],
                                     cwd=root, stderr=err)
        wait_for_log(log, "", 0.5)
        time.sleep(1)
        agent_median, agent_p99 = measure(outbox, uploads, stage, hidden=False)
        agent.send_signal(signal.SIGTERM)
        agent.wait(30)

        peer_out, peer_drop = os.path.join(root, "peer-out"), os.path.join(root, "peer-drop")
        os.makedirs(peer_out)
        os.makedirs(peer_drop)
        peer = subprocess.Popen(
            ["bash", "-c", f"inotifywait -qm -e close_write,moved_to --format %f '{peer_out}' "
                           f"| while read -r f; do cp '{peer_out}'/\"$f\" '{peer_drop}'/; done"])
        time.sleep(1)
        peer_median, peer_p99 = measure(peer_out, peer_drop, stage, hidden=False)
        peer.terminate()
        subprocess.run(["pkill", "-f", f"inotifywait -qm -e close_write,moved_to --format %f {peer_out}"])

        print(f"detection to upload start, {ROUNDS} files, daemon mode (lower is better)")
        print(f"{'':28}{'median ms':>10}{'p99 ms':>10}")
        print(f"{'connectxpert':28}{agent_median:10.2f}{agent_p99:10.2f}")
        print(f"{'inotifywait | cp (peer)':28}{peer_median:10.2f}{peer_p99:10.2f}")
        print(f"ratio connectxpert/peer: median {agent_median / peer_median:.2f}x, p99 {agent_p99 / peer_p99:.2f}x")
        ok = agent_median < 10 and agent_p99 < 50
        print(f"target median < 10 ms and p99 < 50 ms: {'met' if ok else 'NOT MET'}")
        sys.exit(0 if ok else 1)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
