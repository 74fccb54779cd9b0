import CSystemShims
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Waits at most `timeout` seconds for the process `pid`, which need not be our child, to end;
/// true when it has. The kernel wakes the wait (a pidfd); on a kernel without pidfds (before 5.3)
/// the process is looked at every 50 ms.
public func waitForExit(of pid: pid_t, timeout: Double) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    let descriptor = cx_pidfd_open(pid)
    guard descriptor >= 0 else {
        while kill(pid, 0) == 0 && Date() < deadline { usleep(50_000) }
        return kill(pid, 0) != 0
    }
    defer { close(descriptor) }
    var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
    while true {
        let left = Int32(max(0, deadline.timeIntervalSinceNow) * 1000)
        let ready = poll(&entry, 1, left)
        if ready > 0 { return true }
        if ready == 0 || errno != EINTR { return kill(pid, 0) != 0 }
    }
}
