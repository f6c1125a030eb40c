import Dispatch

/// A task executor on Dispatch threads outside Swift's cooperative pool. Work that must go on
/// while callers block pool threads runs here: a transport's reconnection and heartbeat (a
/// test, or an embedding program, may hold every pool thread waiting), and the harness's async
/// work that blocked callers wait for.
public final class OffPoolExecutor: TaskExecutor {
  public static let shared = OffPoolExecutor()
  private let queue = DispatchQueue(label: "kensho.off-pool", attributes: .concurrent)

  public func enqueue(_ job: consuming ExecutorJob) {
    let job = UnownedJob(job)
    let executor = asUnownedTaskExecutor()
    queue.async { job.runSynchronously(on: executor) }
  }
}
