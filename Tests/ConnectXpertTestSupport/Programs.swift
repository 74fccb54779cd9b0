import ConnectXpertSystem
import Foundation
import Synchronization

/// What a program printed and how it ended.
public struct ProgramResult: Sendable {
    public let status: Int32
    public let output: String
    public let errors: String
}

/// Runs a program to its end, capturing its output; `input` is its standard input (else it reads nothing).
@discardableResult
public func runProgram(_ executable: String, _ arguments: [String], input: [UInt8]? = nil) throws -> ProgramResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let output = Pipe(), errors = Pipe()
    process.standardOutput = output
    process.standardError = errors
    let feed = Pipe()
    process.standardInput = input == nil ? FileHandle.nullDevice : feed
    try process.run()
    if let input {
        BlockingThread("program-input") {
            try? feed.fileHandleForWriting.write(contentsOf: input)
            try? feed.fileHandleForWriting.close()
        }
    }
    // Read both pipes while the program runs, so a chatty one does not block on a full pipe.
    let errorData = Mutex(Data())
    let errorsRead = BlockingThread("program-errors") {
        errorData.withLock { $0 = errors.fileHandleForReading.readDataToEndOfFile() }
    }
    let outputData = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    errorsRead.join()
    return ProgramResult(status: process.terminationStatus, output: String(decoding: outputData, as: UTF8.self),
                         errors: String(decoding: errorData.withLock { $0 }, as: UTF8.self))
}

/// Runs a program that must succeed; returns its output.
@discardableResult
public func runChecked(_ executable: String, _ arguments: [String]) throws -> String {
    let result = try runProgram(executable, arguments)
    guard result.status == 0 else {
        throw TestServerError(message: "\(executable) \(arguments.joined(separator: " ")) exited \(result.status): \(result.errors)")
    }
    return result.output
}

/// Polls `condition` until it holds or `timeout` passes: for what another process or thread does.
public func eventually(timeout: Double = 15, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    repeat {
        if try condition() { return true }
        usleep(20_000)
    } while Date() < deadline
    return try condition()
}
