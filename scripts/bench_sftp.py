#!/usr/bin/env python3
"""make bench, SFTP part (issue 3): the agent against OpenSSH sftp -b, rclone and lftp on one
private sshd on loopback, in one run. Prints files/s and MB/s, the agent's ratio to the best peer,
and the agent's peak RSS. The ceiling for one large upload is `ssh host 'cat >/dev/null'`."""
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as local_bench  # noqa: E402  (the inotify latency measurement)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL, SMALL_SIZE, LARGE = 1000, 4096, 512 << 20


def run(args, **kw):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)


def timed(args, **kw):
    """Wall time of a command, and the peak RSS (KiB) of the command itself."""
    start = time.monotonic()
    out = subprocess.run(["/usr/bin/time", "-f", "%M"] + args, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True, **kw)
    elapsed = time.monotonic() - start
    if out.returncode != 0:
        raise RuntimeError(f"failed ({out.returncode}): {' '.join(args)}\n{out.stderr[-2000:]}")
    return elapsed, int(out.stderr.strip().splitlines()[-1])


class Bench:
    def __init__(self, binary):
        self.binary = binary
        self.dir = tempfile.mkdtemp(prefix="cx-bench-sftp-")
        os.chmod(self.dir, 0o755)  # sshd reads authorized_keys in it as the test login
        self.sshd = os.path.join(self.dir, "sshd")
        self.port = 2400 + os.getpid() % 1000
        run([os.path.join(ROOT, "scripts/test-servers/sshd"), "start", self.sshd, str(self.port)])
        self.home = "/var/lib/cxdrop"
        self.key = os.path.join(self.sshd, "client_key")
        self.known = os.path.join(self.sshd, "known_hosts")
        self.ssh = ["-i", self.key, "-o", f"UserKnownHostsFile={self.known}", "-o", "BatchMode=yes"]
        self.rows = []
        self.rss = []

    def close(self):
        run([os.path.join(ROOT, "scripts/test-servers/sshd"), "stop", self.sshd])
        shutil.rmtree(self.dir, ignore_errors=True)

    def remote(self, name):
        path = os.path.join(self.home, name)
        shutil.rmtree(path, ignore_errors=True)
        return name

    def small_files(self, folder):
        os.makedirs(folder, exist_ok=True)
        for index in range(SMALL):
            with open(os.path.join(folder, f"f{index:04d}"), "wb") as f:
                f.write(os.urandom(SMALL_SIZE))
        return folder

    def policy(self, folder_name, remote, identity="alice", extra=""):
        folder = os.path.join(self.dir, folder_name)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "policies.yaml"), "w") as f:
            f.write(f"identity:\n  id: {identity}\nremotes:\n  server:\n"
                    f"    url: sftp://cxdrop@127.0.0.1:{self.port}/~/{remote}\n"
                    f"    key_file: {self.key}\n    known_hosts: {self.known}\n"
                    f"outbox:\n  - remote: server\n{extra}")
        return folder

    def agent(self, folder):
        elapsed, rss = timed([self.binary, "run", "--once", "--policy", "policies.yaml", "--log-level", "error"], cwd=folder)
        self.rss.append(rss)
        return elapsed

    # --- the workloads -------------------------------------------------------------------------

    def upload_small(self):
        source = self.small_files(os.path.join(self.dir, "small"))
        results = {}
        remote = self.remote("b-sftp")
        batch = os.path.join(self.dir, "batch")
        with open(batch, "w") as f:
            f.write(f"-mkdir {remote}\nput {source}/* {remote}/\n")
        results["OpenSSH sftp -b"] = timed(["sftp", "-q", "-b", batch, "-P", str(self.port)] + self.ssh + ["cxdrop@127.0.0.1"])[0]
        remote = self.remote("b-rclone")
        results["rclone (4 transfers)"] = timed(["rclone", "copy", source, f":sftp:{remote}"] + self.rclone_flags())[0]
        remote = self.remote("b-lftp")
        results["lftp mirror -R (4)"] = timed(["lftp", "-c", self.lftp_open() + f"; mirror -R --parallel=4 {source} {remote}"])[0]
        remote = self.remote("b-agent")
        folder = self.policy("alice", remote)
        shutil.copytree(source, os.path.join(folder, "spool/outbox/bob"))
        results["connectxpert run --once"] = self.agent(folder)
        self.table("A: upload 1000 x 4 KiB", {k: SMALL / v for k, v in results.items()}, "files/s", 1.2)

    def upload_large(self):
        source = os.path.join(self.dir, "large.bin")
        with open(source, "wb") as f:
            for _ in range(LARGE >> 20):
                f.write(os.urandom(1 << 20))
        with open(source, "rb") as f:  # warm the page cache: every tool reads from memory
            while f.read(1 << 24):
                pass
        results = {}
        self.remote("c-sftp")
        batch = os.path.join(self.dir, "batch-large")
        with open(batch, "w") as f:
            f.write(f"-mkdir c-sftp\nput {source} c-sftp/large.bin\n")
        results["OpenSSH sftp -b"] = timed(["sftp", "-q", "-b", batch, "-P", str(self.port)] + self.ssh + ["cxdrop@127.0.0.1"])[0]
        remote = self.remote("c-agent")
        folder = self.policy("alice-large", remote)
        os.makedirs(os.path.join(folder, "spool/outbox/bob"))
        shutil.copy(source, os.path.join(folder, "spool/outbox/bob/large.bin"))
        results["connectxpert run --once"] = self.agent(folder)
        with open(source, "rb") as f:
            start = time.monotonic()
            subprocess.run(["ssh", "-p", str(self.port), "-c", "aes128-ctr", "-m", "hmac-sha2-256"] + self.ssh
                           + ["cxdrop@127.0.0.1", "cat >/dev/null"], stdin=f, check=True)
            ceiling = time.monotonic() - start
        mb = LARGE / 1e6
        self.table("B: upload one 512 MiB file", {k: mb / v for k, v in results.items()}, "MB/s", 1.0,
                   peers=["OpenSSH sftp -b"])
        print(f"  ceiling: ssh 'cat >/dev/null' with aes128-ctr + hmac-sha2-256 (what libssh2 negotiates): {mb / ceiling:.0f} MB/s")

    def download_small(self):
        source = os.path.join(self.dir, "small")
        results = {}
        def stage(remote):
            path = os.path.join(self.home, remote, "alice->bob")
            shutil.rmtree(os.path.join(self.home, remote), ignore_errors=True)
            shutil.copytree(source, path)
            run(["chown", "-R", "cxdrop:cxdrop", os.path.join(self.home, remote)])
            return f"{remote}/alice->bob"
        for peer in ["sftp", "rclone", "lftp"]:
            shutil.rmtree(os.path.join(self.dir, "down"), ignore_errors=True)
            os.makedirs(os.path.join(self.dir, "down"))
            remote = stage(f"d-{peer}")
            if peer == "sftp":
                batch = os.path.join(self.dir, "batch-get")
                with open(batch, "w") as f:
                    f.write(f"get {remote}/* {self.dir}/down/\nrm {remote}/*\n")
                results["OpenSSH sftp -b"] = timed(["sftp", "-q", "-b", batch, "-P", str(self.port)] + self.ssh + ["cxdrop@127.0.0.1"])[0]
            elif peer == "rclone":
                results["rclone move (4 transfers)"] = timed(["rclone", "move", f":sftp:{remote}", f"{self.dir}/down"] + self.rclone_flags())[0]
            else:
                results["lftp mirror --Remove-source-files (4)"] = timed(["lftp", "-c", self.lftp_open()
                    + f"; mirror --Remove-source-files --parallel=4 '{remote}' '{self.dir}/down'"])[0]
        remote = stage("d-agent").split("/")[0]
        folder = self.policy("bob", remote, identity="bob", extra="inbox:\n  - remote: server\n")
        results["connectxpert run --once"] = self.agent(folder)
        self.table("C: download and delete 1000 x 4 KiB", {k: SMALL / v for k, v in results.items()}, "files/s", 1.2)

    def daemon_latency(self):
        """Daemon mode: from a file's arrival in the outbox to its final name on the server."""
        remote = self.remote("e-daemon")
        folder = self.policy("alice-daemon", remote)
        outbox = os.path.join(folder, "spool/outbox/bob")
        target = os.path.join(self.home, remote, "alice->bob")
        os.makedirs(outbox)
        os.makedirs(target)
        run(["chown", "-R", "cxdrop:cxdrop", os.path.join(self.home, remote)])
        stage = os.path.join(self.dir, "stage")
        os.makedirs(stage, exist_ok=True)
        with open(os.path.join(self.dir, "daemon.log"), "w") as log:
            agent = subprocess.Popen([self.binary, "run", "--policy", "policies.yaml", "--log-level", "error"],
                                     cwd=folder, stderr=log)
        try:
            time.sleep(1)
            median, p99 = local_bench.measure(outbox, target, stage, hidden=False)
        finally:
            agent.terminate()
            agent.wait(30)
        print(f"\nD: daemon mode, file closed in the outbox -> final name on the server ({local_bench.ROUNDS} files)")
        print(f"  median {median:.2f} ms, p99 {p99:.2f} ms")

    def rclone_flags(self):
        return ["--sftp-host", "127.0.0.1", "--sftp-port", str(self.port), "--sftp-user", "cxdrop",
                "--sftp-key-file", self.key, "--sftp-known-hosts-file", self.known, "--transfers", "4",
                "--sftp-disable-hashcheck", "-q"]

    def lftp_open(self):
        connect = f"ssh -a -x -i {self.key} -o UserKnownHostsFile={self.known} -o BatchMode=yes"
        return f"set sftp:connect-program '{connect}'; open -u cxdrop, -p {self.port} sftp://127.0.0.1"

    def table(self, title, rates, unit, target, peers=None):
        agent = rates.pop("connectxpert run --once")
        best_name, best = max(((k, v) for k, v in rates.items() if peers is None or k in peers), key=lambda kv: kv[1])
        print(f"\n{title} ({unit}, higher is better)")
        for name, value in sorted(rates.items(), key=lambda kv: -kv[1]):
            print(f"  {name:40}{value:10.0f}")
        ratio = agent / best
        verdict = "met" if ratio >= target else "NOT MET"
        print(f"  {'connectxpert run --once':40}{agent:10.0f}   {ratio:.2f}x {best_name}; target {target}x: {verdict}")
        self.rows.append((title, ratio, target))


def main():
    bench = Bench(sys.argv[1])
    try:
        bench.upload_small()
        bench.download_small()
        bench.upload_large()
        bench.daemon_latency()
        peak = max(bench.rss) / 1024
        print(f"\npeak RSS of the agent: {peak:.0f} MiB (target under 64 MiB): {'met' if peak < 64 else 'NOT MET'}")
        missed = [title for title, ratio, target in bench.rows if ratio < target]
        if missed or peak >= 64:
            print("targets not met: " + ", ".join(missed + (["peak RSS"] if peak >= 64 else [])))
    except RuntimeError as error:
        log = open(os.path.join(bench.sshd, "sshd.log")).read()[-3000:]
        sys.exit(f"{error}\nsshd log:\n{log}")
    finally:
        bench.close()


if __name__ == "__main__":
    main()
