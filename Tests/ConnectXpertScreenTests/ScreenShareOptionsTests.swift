import ConnectXpertPolicy
import Testing

@testable import ConnectXpertScreen

/// What a request may ask of the policy's screen share: its web port obeys the rules its RFB
/// port does.
@Suite struct ScreenShareOptionsTests {
    /// No password (auth: none), and a web port on every address when `everywhere`.
    private func policy(everywhere: Bool) -> ScreenShareSettings {
        var settings = ScreenShareSettings.default
        settings.authentication = .none
        if everywhere { settings.webSocket = ListenAddress(host: "0.0.0.0", port: 5800) }
        return settings
    }

    private func resolve(everywhere: Bool = false,
                         _ edit: (inout ScreenShareDocument) -> Void) -> Result<ScreenShareOptions, RFBError> {
        var request = ScreenShareDocument()
        edit(&request)
        return Result { () throws(RFBError) in
            do { return try ScreenShareOptions.resolve(request, policy: policy(everywhere: everywhere)) } catch {
                throw error as! RFBError  // swiftlint:disable:this force_cast
            }
        }
    }

    @Test func aRequestMayOpenAWebPortOnLoopback() throws {
        let options = try resolve { $0.websocket = "127.0.0.1:5800" }.get()
        #expect(options.webSocket == ListenAddress(host: "127.0.0.1", port: 5800))
        #expect(try resolve { _ in }.get().webSocket == nil)
    }

    @Test func aWebPortElsewhereNeedsThePolicyAndAPassword() {
        #expect(resolve { $0.websocket = "192.0.2.1:5800" } == .failure(.connection(
            "the policy lets screen shares listen on loopback addresses only (jobs.screen_share.websocket); "
                + "192.0.2.1 is not one")))
        #expect(resolve { $0.websocket = "nowhere" } == .failure(.connection(
            "'nowhere' is not host:port, such as 127.0.0.1:5900")))
        #expect(resolve(everywhere: true) { $0.websocket = "192.0.2.1:5800" } == .failure(.connection(
            "a screen share without a password listens on a loopback address only, not 192.0.2.1:5800")))
    }
}
