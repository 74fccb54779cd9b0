// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "ConnectXpert",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "connectxpert", targets: ["connectxpert"]),
        // For the fuzz targets in Fuzz/ (make fuzz), which read the parsers through them.
        .library(name: "ConnectXpertPolicy", targets: ["ConnectXpertPolicy"]),
        .library(name: "ConnectXpertFTP", targets: ["ConnectXpertFTP"]),
        .library(name: "ConnectXpertMail", targets: ["ConnectXpertMail"]),
        .library(name: "ConnectXpertScreen", targets: ["ConnectXpertScreen"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
    ],
    targets: [
        // C shims: one small target per C library.
        .systemLibrary(name: "CInotifyTools", providers: [.apt(["libinotifytools0-dev"])]),
        .systemLibrary(name: "CSQLite", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CSSH2", providers: [.apt(["libssh2-1-dev"])]),
        .target(name: "CSystemShims"),
        .target(name: "CCurl", linkerSettings: [.linkedLibrary("curl")]),
        .target(name: "CX11", linkerSettings: [
            .linkedLibrary("X11"), .linkedLibrary("Xext"), .linkedLibrary("Xtst"), .linkedLibrary("Xdamage"),
            .linkedLibrary("Xfixes"),
        ]),
        .target(name: "CZlib", linkerSettings: [.linkedLibrary("z")]),
        .target(name: "CCrypto", linkerSettings: [.linkedLibrary("crypto")]),

        // Syscalls with EINTR retry and typed errno errors.
        .target(name: "ConnectXpertSystem", dependencies: ["CSystemShims"]),
        // policies.yaml: model, decoding, validation, messages.
        .target(name: "ConnectXpertPolicy", dependencies: [
            "ConnectXpertSystem",
            .product(name: "Yams", package: "Yams"),
        ]),
        // The durable transfer journal (SQLite, WAL).
        // The age file format (age-encryption.org/v1), streaming, on swift-crypto.
        .target(name: "ConnectXpertAge", dependencies: [
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "CryptoExtras", package: "swift-crypto"),
        ]),
        // Identities, their keys, signatures and what is sealed between them.
        .target(name: "ConnectXpertSeal", dependencies: [
            "ConnectXpertAge", "ConnectXpertSystem", .product(name: "Crypto", package: "swift-crypto"),
        ]),
        .target(name: "ConnectXpertJournal", dependencies: ["CSQLite", "ConnectXpertSystem"]),
        // Spool layout, names, the inotify watcher.
        .target(name: "ConnectXpertSpool", dependencies: [
            "CInotifyTools", "ConnectXpertSystem", "ConnectXpertPolicy",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The transport protocol and the local-directory drop.
        .target(name: "ConnectXpertTransport", dependencies: ["ConnectXpertSystem", "ConnectXpertPolicy"]),
        // SFTP through libssh2.
        .target(name: "ConnectXpertSFTP", dependencies: [
            "CSSH2", "ConnectXpertSystem", "ConnectXpertPolicy", "ConnectXpertTransport",
        ]),
        // The libcurl easy handle owner, shared by FTP and mail.
        .target(name: "ConnectXpertCurl", dependencies: ["CCurl", "ConnectXpertSystem", "ConnectXpertPolicy"]),
        // FTP and FTPS through libcurl.
        .target(name: "ConnectXpertFTP", dependencies: [
            "ConnectXpertCurl", "ConnectXpertSystem", "ConnectXpertPolicy", "ConnectXpertTransport",
        ]),
        // Mail: message parsing and composing, the SMTP client, the outgoing queue.
        .target(name: "ConnectXpertMail", dependencies: [
            "ConnectXpertCurl", "ConnectXpertSystem", "ConnectXpertPolicy", "ConnectXpertJournal",
            "ConnectXpertSpool", "ConnectXpertTransport",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Screen share: an RFB (VNC) server for an X11 display, and a small RFB client.
        .target(name: "ConnectXpertScreen", dependencies: [
            "CX11", "CZlib", "CCrypto", "ConnectXpertSystem", "ConnectXpertPolicy",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The data path: intake, the scheduler, the send and receive pipelines and their stages.
        .target(name: "ConnectXpertTransfer", dependencies: [
            "ConnectXpertSystem", "ConnectXpertPolicy", "ConnectXpertJournal",
            "ConnectXpertSpool", "ConnectXpertTransport", "ConnectXpertSeal",
            .product(name: "DequeModule", package: "swift-collections"),
            .product(name: "HeapModule", package: "swift-collections"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The daemon: its services, signals, policy reload, the mail workers, the screen-share supervisor;
        // the transports each remote URL names.
        .target(name: "ConnectXpertDaemon", dependencies: [
            "ConnectXpertSystem", "ConnectXpertPolicy", "ConnectXpertJournal", "ConnectXpertSpool",
            "ConnectXpertTransport", "ConnectXpertSFTP", "ConnectXpertFTP", "ConnectXpertTransfer", "ConnectXpertMail",
            "ConnectXpertScreen",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "UnixSignals", package: "swift-service-lifecycle"),
        ]),
        .executableTarget(name: "connectxpert", dependencies: [
            "ConnectXpertSystem", "ConnectXpertPolicy", "ConnectXpertJournal",
            "ConnectXpertSpool", "ConnectXpertTransfer", "ConnectXpertDaemon", "ConnectXpertMail", "ConnectXpertScreen",
            "ConnectXpertTransport", "ConnectXpertAge", "ConnectXpertSeal",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Yams", package: "Yams"),
            .product(name: "Logging", package: "swift-log"),
        ]),

        // Starts the servers integration tests need (scripts/test-servers/).
        .target(name: "ConnectXpertTestSupport", dependencies: [
                    "ConnectXpertSystem", "ConnectXpertPolicy", "ConnectXpertTransport", "CZlib",
                ],
                path: "Tests/ConnectXpertTestSupport"),
        .testTarget(name: "ConnectXpertSystemTests", dependencies: ["ConnectXpertSystem"]),
        .testTarget(name: "ConnectXpertSealTests", dependencies: [
            "ConnectXpertSeal", "ConnectXpertAge", "ConnectXpertSystem", "ConnectXpertTestSupport",
        ]),
        .testTarget(name: "ConnectXpertAgeTests", dependencies: [
            "ConnectXpertAge", "ConnectXpertTestSupport", .product(name: "Crypto", package: "swift-crypto"),
        ]),
        .testTarget(name: "ConnectXpertPolicyTests", dependencies: ["ConnectXpertPolicy"]),
        .testTarget(name: "ConnectXpertFTPTests", dependencies: [
            "ConnectXpertFTP", "ConnectXpertCurl", "ConnectXpertPolicy", "ConnectXpertTransport", "ConnectXpertSystem",
            "ConnectXpertTestSupport",
        ]),
        .testTarget(name: "ConnectXpertSFTPTests", dependencies: [
            "ConnectXpertSFTP", "ConnectXpertPolicy", "ConnectXpertTransport", "ConnectXpertSystem", "ConnectXpertTestSupport",
        ]),
        .testTarget(name: "ConnectXpertMailTests", dependencies: [
            "ConnectXpertMail", "ConnectXpertPolicy", "ConnectXpertSystem", "ConnectXpertJournal", "ConnectXpertTestSupport",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "ConnectXpertScreenTests", dependencies: [
            "ConnectXpertScreen", "ConnectXpertPolicy", "ConnectXpertSystem", "ConnectXpertTestSupport",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "ConnectXpertSpoolTests", dependencies: ["ConnectXpertSpool", "ConnectXpertSystem"]),
        .testTarget(name: "ConnectXpertJournalTests", dependencies: ["ConnectXpertJournal"]),
        .testTarget(name: "ConnectXpertTransportTests", dependencies: ["ConnectXpertTransport", "ConnectXpertSystem"]),
        .testTarget(name: "ConnectXpertTransferTests", dependencies: [
            "ConnectXpertTransfer", "ConnectXpertDaemon", "ConnectXpertPolicy", "ConnectXpertJournal",
            "ConnectXpertTransport", "ConnectXpertSystem", "ConnectXpertTestSupport",
        ]),
        .testTarget(name: "ConnectXpertCLITests",
                    dependencies: ["ConnectXpertJournal", "ConnectXpertPolicy", "ConnectXpertSystem",
                                   "ConnectXpertTestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
