import ConnectXpertTransport

/// What one inbox rule's listings saw of remote files that were not yet stable. A writer may be
/// writing a file under its final name (ConnectXpert 0.7 and most scripts do), so a file is taken
/// only once it keeps its size and modification time across two listings at least the rule's
/// `stable_for` apart, as Camel's `readLock=changed` does.
///
/// A listing pass starts from the sightings of the pass before and leaves those of the files still
/// unsettled for the next one: a file that went away is forgotten with its pass.
struct Sightings: Sendable {
    private struct Sighting: Sendable {
        let size: Int64
        let modificationNanoseconds: Int64
        /// When a listing first saw the file as it is now, in seconds since 1970.
        let since: Double
    }

    /// By the source's bytes: Swift compares the NFC and NFD forms of a name as equal, Linux does not.
    private var previous: [[UInt8]: Sighting]
    private var next: [[UInt8]: Sighting] = [:]
    /// The pass's number in this run, from 1.
    let pass: Int
    /// Seconds from now until the first unsettled file can be taken, if any is unsettled.
    private(set) var soonest: Double?

    /// The sightings a pass starts from: those the pass before left.
    init(after previous: Sightings?) {
        self.previous = previous?.next ?? [:]
        pass = (previous?.pass ?? 0) + 1
    }

    /// Whether a listed file can be taken now; if not, it is remembered for the next pass.
    mutating func isStable(_ source: String, _ entry: RemoteEntry, for span: Double, now: Double) -> Bool {
        guard span > 0 else { return true }
        let key = Array(source.utf8)
        var since = now
        if let seen = previous[key], seen.size == entry.size,
           seen.modificationNanoseconds == entry.modificationNanoseconds {
            if now - seen.since >= span { return true }
            since = seen.since
        }
        next[key] = Sighting(size: entry.size, modificationNanoseconds: entry.modificationNanoseconds, since: since)
        soonest = min(soonest ?? .infinity, since + span - now)
        return false
    }

    /// How many files are still unsettled.
    var unsettled: Int { next.count }
}
