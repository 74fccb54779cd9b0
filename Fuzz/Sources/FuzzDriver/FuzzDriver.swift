import Glibc

@_silgen_name("LLVMFuzzerRunDriver")
private func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

nonisolated(unsafe) private var target: (UnsafeRawBufferPointer) -> Void = { _ in
    fatalError("LLVMFuzzerTestOneInput was called before fuzz(_:) was given the target")
}

/// Hands the command line to libFuzzer, which calls `body` with each input it tries; an input that
/// traps is a finding. Every fuzz target's `main.swift` is one call of this.
public func fuzz(_ body: @escaping (UnsafeRawBufferPointer) -> Void) -> Never {
    target = body
    var argc = CommandLine.argc
    var argv = CommandLine.unsafeArgv
    exit(LLVMFuzzerRunDriver(&argc, &argv, testOneInput))
}

/// The entry point libFuzzer's own `main` would call; linked so that its archive resolves, and the
/// one callback `fuzz(_:)` hands the driver.
@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    target(UnsafeRawBufferPointer(start: start, count: count))
    return 0
}
