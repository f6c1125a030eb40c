public import KenshoProtocol

/// What a bus needs from the wire: send a message, and later be closed.
///
/// A transport hands every message it receives for its worker to the ``TransportReceiver``
/// given to ``start(receiver:)``, and reports peers that disappear (KSP-8.1).
public protocol Transport: Sendable {
  /// Connects the receiver; called once by the bus when it is created.
  func start(receiver: any TransportReceiver)
  /// Sends one message. Never blocks on the receiver's callbacks.
  func send(_ message: KenshoMessage)
  /// Releases the transport (KSP-10.1); nothing is delivered to the receiver afterwards.
  func close()
}

/// The receiving side of a ``Transport``: a bus.
public protocol TransportReceiver: AnyObject, Sendable {
  /// A message arrived for this worker (or a broadcast).
  func receive(_ message: KenshoMessage)
  /// The transport learned that `worker` is gone (KSP-8.1).
  func peerDown(_ worker: String)
  /// Something arrived that is not a KenshoMessage at all (not JSON, not an object, a bad
  /// field): dropped and counted (KSP-1.2).
  func rejected()
}

extension TransportReceiver {
  public func rejected() {}
}
