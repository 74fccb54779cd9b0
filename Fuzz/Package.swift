// swift-tools-version:6.0
// libFuzzer targets for the parsers that read what others wrote: `make fuzz` builds them with
// -sanitize=fuzzer,address and runs each over its corpus (Fuzz/Corpus/<target>/).
import PackageDescription

let package = Package(
    name: "ConnectXpertFuzz",
    dependencies: [.package(name: "ConnectXpert", path: "..")],
    targets: [
        .target(name: "FuzzDriver"),
        .executableTarget(name: "FuzzPolicy", dependencies: ["FuzzDriver", .connectXpert("ConnectXpertPolicy")]),
        .executableTarget(name: "FuzzValues", dependencies: ["FuzzDriver", .connectXpert("ConnectXpertPolicy")]),
        .executableTarget(name: "FuzzMail", dependencies: ["FuzzDriver", .connectXpert("ConnectXpertMail")]),
        .executableTarget(name: "FuzzFTPListing", dependencies: ["FuzzDriver", .connectXpert("ConnectXpertFTP")]),
        .executableTarget(name: "FuzzRFBClient", dependencies: ["FuzzDriver", .connectXpert("ConnectXpertScreen")]),
    ],
    swiftLanguageModes: [.v5]
)

extension Target.Dependency {
    static func connectXpert(_ library: String) -> Self { .product(name: library, package: "ConnectXpert") }
}
