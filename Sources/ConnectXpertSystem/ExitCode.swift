/// Process exit codes from sysexits(3).
public enum SysExit: Int32, Sendable {
    case ok = 0
    case usage = 64
    case dataError = 65
    case noInput = 66
    case unavailable = 69
    case software = 70
    case cantCreate = 73
    case ioError = 74
    case protocolError = 76
    case tempFail = 75
    case noPermission = 77
    case config = 78
}
