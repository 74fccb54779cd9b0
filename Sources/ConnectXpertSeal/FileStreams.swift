import ConnectXpertAge
import ConnectXpertSystem

/// Files are read and written as age inputs and outputs as they are.
extension FileDescriptor: AgeInput, AgeOutput {}
