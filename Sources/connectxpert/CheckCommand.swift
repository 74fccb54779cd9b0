import ArgumentParser
import ConnectXpertPolicy
import ConnectXpertSystem

struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate the policy and explain what it does.",
        discussion: "Exits 0 for a valid policy, 78 (EX_CONFIG) for an invalid one, with file:line:column for each problem.")

    @OptionGroup var policyOptions: PolicyOptions

    func run() throws {
        let policy = try policyOptions.load()
        print(PolicyExplanation(policy: policy).text)
    }
}

/// The policy in words, for `check`.
struct PolicyExplanation {
    let policy: Policy

    var text: String {
        var lines = ["\(policy.sourceFile): OK", ""]
        lines.append("We are '\(policy.identity.id)', agent '\(policy.identity.agent)'. Spool: \(policy.spool)")
        lines.append("")
        lines.append("Remotes:")
        for remote in policy.remotes.values.sorted(by: { $0.name < $1.name }) {
            var line = "  \(remote.name): \(remote.url)"
            if remote.endpoint == .localDirectory { line += " (local folder \(remote.path))" }
            line += ", up to \(remote.maxConnections) connections, timeout \(remote.timeout)"
            lines.append(line)
            if case .ftp(let ftp) = remote.endpoint { lines.append("    " + describe(ftp)) }
        }
        lines.append("")
        lines.append("Sending (first matching rule wins):")
        if policy.outbox.isEmpty { lines.append("  nothing: there are no outbox rules") }
        for rule in policy.outbox {
            let recipients = rule.recipients.map(\.pattern).joined(separator: ", ")
            lines.append("  outbox/<\(recipients)>/ -> \(rule.remote):\(rule.remotePath)")
            var details = "    files \(rule.include.map(\.pattern).joined(separator: ", "))"
            if !rule.exclude.isEmpty { details += " except \(rule.exclude.map(\.pattern).joined(separator: ", "))" }
            details += "; then \(rule.after.rawValue); on a name conflict: \(rule.conflict.rawValue)"
            details += "; max size: \(rule.maxSize.map(\.description) ?? "none")"
            lines.append(details)
            if rule.seal {
                lines.append("    sealed (seal: true): each file goes as an age file to the recipient's pinned key, "
                             + "with a signed manifest; the drop sees sizes, times and the pair of IDs only")
                lines.append("    " + describe(rule.trust, "recipient"))
            }
            lines.append("    " + describe(rule.retry))
        }
        lines.append("")
        lines.append("Receiving:")
        if policy.inbox.isEmpty { lines.append("  nothing: there are no inbox rules") }
        for rule in policy.inbox {
            let senders = rule.senders.map(\.pattern).joined(separator: ", ")
            lines.append("  \(rule.remote):\(rule.remoteFolder.render(["recipient": policy.identity.id])) from senders \(senders), every \(rule.every)")
            lines.append("    into \(rule.destination); remote copies are \(rule.deleteRemote ? "deleted once stored" : "kept"); on a name conflict: \(rule.conflict.rawValue)")
            if rule.deleteRemote {
                lines.append("    each file is claimed (renamed to a name of this agent's) before its download, so other "
                             + "agents of '\(policy.identity.id)' may read the same drop; a claim older than "
                             + "\(rule.claimTimeout) is taken back")
            }
            lines.append(rule.stableFor.seconds > 0
                ? "    a file is taken once its size and time stay the same for \(rule.stableFor)"
                : "    a file is taken as soon as it is listed (stable_for: 0: writers rename into place)")
            switch rule.requireSeal {
            case true?: lines.append("    sealed objects only (require_seal: true): plain files are left on the drop")
            case false?: lines.append("    sealed objects and plain files (require_seal: false)")
            case nil:
                lines.append("    sealed objects only from senders whose key is pinned; plain files from the others")
            }
            lines.append("    " + describe(rule.trust, "sender"))
            lines.append("    " + describe(rule.retry))
        }
        lines.append("")
        lines.append("Mail:")
        let mail = policy.mail
        func security(_ server: MailServer) -> String {
            server.tls == .implicit ? "TLS" : server.tls == .required ? "STARTTLS required" : "NO TLS"
        }
        if let smtp = mail.smtp {
            lines.append("  mail/outbox/*.eml -> \(smtp.url) (\(security(smtp))\(smtp.user.map { ", login \($0)" } ?? ""), timeout \(smtp.timeout))")
            lines.append("    from \(mail.from ?? "each message's From:"); sent mail is \(mail.after == .archive ? "kept in mail/sent/" : "deleted")")
            lines.append("    " + describe(mail.retry))
        } else {
            lines.append("  no SMTP server (mail.smtp): queued mail waits")
        }
        if mail.inbox.isEmpty { lines.append("  no mailbox to fetch from (mail.inbox)") }
        for source in mail.inbox {
            let after = switch source.after {
            case .markSeen: "marked seen"
            case .delete: "deleted"
            case .keep: "left as they are"
            }
            lines.append("  \(source.server.url) (\(security(source.server)), login \(source.server.user ?? "")) -> \(source.maildir), every \(source.every)")
            lines.append("    fetches \(source.select == .unseen ? "unseen" : "all") messages; on the server they are then \(after)")
        }
        lines.append("")
        lines.append("Screen share:")
        let share = policy.screenShare
        lines.append("  display \(share.display) on \(share.listen), \(share.authentication == .none ? "no password" : share.passwordFile.map { "VNC password in \($0)" } ?? "VNC password from --password-file"), at most \(share.maxDuration)"
            + (share.viewOnly ? ", view only" : "") + (share.once ? ", ends when the viewer leaves" : ""))
        return lines.joined(separator: "\n")
    }
}

/// What protects an FTP remote's login and files, as `check` explains it.
private func describe(_ ftp: FTPSettings) -> String {
    let trusted = ftp.caFile.map { "certificates signed by the CA in \($0) (instead of the system's)" }
        ?? "certificates the system's CAs sign"
    switch ftp.tls {
    case .required: return "TLS required (AUTH TLS, refused if the server lacks it), trusting \(trusted)"
    case .implicit: return "TLS from the first byte (ftps://), trusting \(trusted)"
    case .off: return "NO TLS (tls: off): the password and the files cross the network readable"
    }
}

/// A rule's backoff, as `check` explains it.
private func describe(_ retry: RetryPolicy) -> String {
    "retry after \(retry.initial), doubling up to \(retry.maximum); give up after \(retry.giveUpAfter)"
}

private func describe(_ trust: PeerTrustMode, _ peer: String) -> String {
    switch trust {
    case .verified:
        "trust: verified: only a \(peer) key a person pinned with 'connectxpert peer trust ID' is used; a changed key "
            + "stops the \(peer)'s files"
    case .acceptNew:
        "trust: accept-new: a \(peer) key seen for the first time is pinned (and logged); a changed key stops the "
            + "\(peer)'s files"
    }
}
