import ArgumentParser
import Foundation
import KenshoRelay
import KenshoReport
import Synchronization

extension KenshoBench {
  /// `kensho-bench relay`: the Swift relay (PROTOCOL.md §11), standalone.
  struct Relay: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Run the WebSocket relay (KSP-11) until SIGINT or SIGTERM.",
      discussion: """
        Prints one line, `listening ws://HOST:PORT/`, once it accepts connections; on SIGINT or
        SIGTERM it closes every connection, prints its counters as one JSON line on stderr and
        exits 0. Without --listen it listens on 127.0.0.1:$KENSHO_RELAY_PORT (the port
        --relay-cmd hands to the relay it starts), else on 127.0.0.1:8080; KENSHO_RELAY_TOKEN
        gives the token when --token is absent.
        """)

    @Option(help: "HOST:PORT to listen on (port 0: any free port).")
    var listen: String?

    @Option(help: "Require this token from every client (`?token=` or `Authorization: Bearer`).")
    var token: String?

    @Option(help: "Largest message a client may send, in bytes; a larger one closes it with 1009.")
    var maxFrameBytes = RelayConfiguration().maxFrameBytes

    @Option(help: "Bytes queued for one receiver before frames to it are dropped (KSP-11.6).")
    var maxBufferedBytes = RelayConfiguration().maxBufferedBytes

    func validate() throws {
      guard (125...(1 << 30)).contains(maxFrameBytes) else {
        throw ValidationError("--max-frame-bytes must be within 125...1073741824, not \(maxFrameBytes)")
      }
      guard (1024...(1 << 34)).contains(maxBufferedBytes) else {
        throw ValidationError("--max-buffered-bytes must be within 1024...17179869184, not \(maxBufferedBytes)")
      }
      _ = try address()
    }

    /// The host and port to listen on, from --listen or the environment.
    func address() throws -> (host: String, port: Int) {
      let environment = ProcessInfo.processInfo.environment
      guard let listen else {
        let port = environment["KENSHO_RELAY_PORT"] ?? "8080"
        guard let number = Int(port), (0...65535).contains(number) else {
          throw ValidationError("KENSHO_RELAY_PORT must be a port number (0...65535), not '\(port)'")
        }
        return ("127.0.0.1", number)
      }
      guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]),
        (0...65535).contains(port)
      else {
        throw ValidationError("--listen expects HOST:PORT with a port in 0...65535, not '\(listen)'")
      }
      var host = String(listen[..<colon])
      if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
      guard !host.isEmpty else { throw ValidationError("--listen expects HOST:PORT; the host is missing") }
      return (host, port)
    }

    func run() throws {
      let (host, port) = try address()
      var configuration = RelayConfiguration(
        token: token ?? ProcessInfo.processInfo.environment["KENSHO_RELAY_TOKEN"],
        maxFrameBytes: maxFrameBytes, maxBufferedBytes: maxBufferedBytes)
      configuration.name = "kensho-bench \(KenshoVersion.current)"
      let settings = configuration
      let started = blocking { try await RelayServer.start(host: host, port: port, configuration: settings) }
      let relay: RelayServer
      switch started {
      case .success(let r): relay = r
      case .failure(let error):
        printError("error: cannot listen on \(host):\(port): \(error)")
        throw ExitCode(1)
      }
      print("listening \(relay.url)")
      fflush(nil)
      let stop = DispatchSemaphore(value: 0)
      let interruption = Interruption.install { _ in stop.signal() }
      stop.wait()
      _ = interruption
      let stats = blocking { () async -> RelayStats in
        let stats = await relay.stats()
        await relay.close()
        return stats
      }
      if case .success(let stats) = stats, let json = try? JSONEncoder().encode(stats) {
        FileHandle.standardError.write(json + Data("\n".utf8))
      }
    }
  }
}

/// Runs `work` on the concurrency pool and waits for it on this (non-pool) thread.
func blocking<T: Sendable>(_ work: @escaping @Sendable () async throws -> T) -> Result<T, any Error> {
  let result = Mutex<Result<T, any Error>?>(nil)
  let done = DispatchSemaphore(value: 0)
  Task {
    let r: Result<T, any Error>
    do { r = .success(try await work()) } catch { r = .failure(error) }
    result.withLock { $0 = r }
    done.signal()
  }
  done.wait()
  return result.withLock { $0 } ?? .failure(CancellationError())
}
