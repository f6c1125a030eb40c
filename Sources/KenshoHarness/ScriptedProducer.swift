import Crypto
import DequeModule
import Dispatch
import Foundation
import Histogram
@_spi(Testing) import KenshoBus
import KenshoMemory
import KenshoProtocol
import KenshoScenario
import KenshoVerdict
import Synchronization

/// The scripted producer: what a scenario's stream method does with its emitter (chunks on a
/// schedule, bursts, credit waits, end, error, hang or crash).
extension ReferenceRun {
  // MARK: Producer

  func produce(
    worker: String, behaviour: ProducerBehaviour, generator: ChunkGenerator, stream: any EmitterUnderTest
  ) {
    let index = recorder.streamIndex(stream.streamId) ?? WireRecord.none
    recorder.record(.handler(index, worker: recorder.workerId(worker)), at: clock.nanoseconds())
    if behaviour.chunks == 0, case .throwError = behaviour.finish { return }  // the handler threw (KSP-2.5)
    let step = Nanos.from(ms: behaviour.intervalMs)
    _ = clock.schedule(at: clock.nanoseconds() &+ step) { [self] in
      pump(worker: worker, behaviour: behaviour, generator: generator, stream: stream, next: 0)
    }
  }

  /// Emits the chunks due from `next` on. `limit` bounds a batch to an adapter: after a
  /// refusal for want of credit, twice what the consumer granted last time, doubling back up
  /// to ``maxBatch`` (a batch the window refuses is work thrown away, on both sides).
  func pump(
    worker: String, behaviour: ProducerBehaviour, generator: ChunkGenerator, stream: any EmitterUnderTest, next: Int,
    limit: Int = maxBatch
  ) {
    if state.withLock({ $0.crashed.contains(worker) }) { return }
    let step = Nanos.from(ms: behaviour.intervalMs)
    var index = next
    let (streamIndex, intendedOpen) = state.withLock { s in
      let i = s.streamIndex[stream.streamId]
      return (i, i.map { s.records[$0].intendedOpen } ?? clock.nanoseconds())
    }
    let h = recorder.streamIndex(stream.streamId) ?? WireRecord.none
    // As fast as possible: 256 chunks a turn. With an interval, every chunk due by now; an
    // interval under the burst window makes bursts, one a window, instead of a timer a chunk.
    let now = clock.nanoseconds()
    let batch: Int
    if step == 0 {
      batch = Self.maxBatch
    } else {
      var due = next
      while due < behaviour.chunks && intendedOpen &+ Int64(due + 1) &* step <= now { due += 1 }
      batch = max(1, due - next)
    }
    if stream.prefersBatches {
      // An adapter: one round trip for the whole batch.
      // In virtual time every chunk due goes in one operation, as before; in real time a
      // batch is bounded (see `limit`).
      let cap = adapters?.executor != nil ? limit : Int.max
      let end = min(behaviour.chunks, next + min(batch, cap))
      let values = (next..<end).map { generator.chunk($0) }
      let sentAt = wall.nanoseconds()
      let now = clock.nanoseconds()
      state.withLock { s in
        s.emitted += values.count
        if let i = streamIndex, options.measure {
          for k in next..<end {
            s.records[i].emits.append(
              Emit(wall: sentAt, intended: step > 0 ? intendedOpen &+ Int64(k + 1) &* step : now))
          }
        }
      }
      let at = clock.nanoseconds()
      let calls = values.enumerated().map { k, value in
        recorder.begin(.emit(h, index: Int32(clamping: next + k), payload: value.ijsonFingerprint, result: .ok), at: at)
      }
      let count = values.count
      stream.chunks(values) { [self] sent, refusal in
        // The calls after the refused one never happened: they are marked closed, not ok.
        for (k, call) in calls.enumerated() where k >= sent {
          recorder.settle(call, k == sent ? Self.result(refusal) : .closed)
        }
        state.withLock { s in
          guard let i = streamIndex else { return }
          for _ in sent..<count { _ = s.records[i].emits.popLast() }
          if digests {
            if s.records[i].sentDigest == nil { s.records[i].sentDigest = RunningDigest() }
            for k in next..<(next + sent) { s.records[i].sentDigest?.update(data: generator.bytes(k)) }
          }
        }
        if let refusal {
          if refusal == .noCredit {
            resumeOnCredit(worker, behaviour, generator, stream, at: next + sent, limit: max(1, 2 * sent))
          }
          return
        }
        proceed(
          worker: worker, behaviour: behaviour, generator: generator, stream: stream, at: next + sent,
          intendedOpen: intendedOpen, limit: min(Self.maxBatch, 2 * limit))
      }
      return
    }
    while !stream.prefersBatches && index < behaviour.chunks && index < next + batch {
      let value = generator.chunk(index)
      let sentAt = wall.nanoseconds()
      // When chunks follow a schedule, latency counts from when each was due (no coordinated
      // omission); as-fast-as-possible chunks are due when they are sent.
      let due = step > 0 ? intendedOpen &+ Int64(index + 1) &* step : clock.nanoseconds()
      state.withLock { s in
        s.emitted += 1
        if let i = streamIndex {
          if options.measure { s.records[i].emits.append(Emit(wall: sentAt, intended: due)) }
          if digests {
            if s.records[i].sentDigest == nil { s.records[i].sentDigest = RunningDigest() }
            s.records[i].sentDigest?.update(data: generator.bytes(index))
          }
        }
      }
      let call = recorder.begin(
        .emit(h, index: Int32(clamping: index), payload: value.ijsonFingerprint, result: .ok), at: clock.nanoseconds())
      do {
        try stream.chunk(value)
      } catch {
        recorder.settle(call, Self.result(error))
        if let i = streamIndex { state.withLock { _ = $0.records[i].emits.popLast() } }
        if error == .noCredit { resumeOnCredit(worker, behaviour, generator, stream, at: index) }
        return  // cancelled or closed: the producer stops
      }
      index += 1
    }
    proceed(
      worker: worker, behaviour: behaviour, generator: generator, stream: stream, at: index, intendedOpen: intendedOpen)
  }

  /// Once chunks up to `index` are out: the next turn of the pump, or the producer's finish.
  func proceed(
    worker: String, behaviour: ProducerBehaviour, generator: ChunkGenerator, stream: any EmitterUnderTest,
    at index: Int,
    intendedOpen: Int64, limit: Int = maxBatch
  ) {
    let step = Nanos.from(ms: behaviour.intervalMs)
    let h = recorder.streamIndex(stream.streamId) ?? WireRecord.none
    if index < behaviour.chunks {
      let resume = index
      let nextDue = step == 0 ? clock.nanoseconds() : intendedOpen &+ Int64(index + 1) &* step
      let at = step > 0 && step < Self.burstWindow ? max(nextDue, clock.nanoseconds() &+ Self.burstWindow) : nextDue
      _ = clock.schedule(at: at) { [self] in
        pump(worker: worker, behaviour: behaviour, generator: generator, stream: stream, next: resume, limit: limit)
      }
      return
    }
    func finish(error: Bool, _ body: () throws(EmitterError) -> Void) {
      let call = recorder.begin(.finish(h, error: error, result: .ok), at: clock.nanoseconds())
      do { try body() } catch { recorder.settle(call, Self.result(error)) }
    }
    switch behaviour.finish {
    case .end(let summary):
      finish(error: false) { () throws(EmitterError) in try stream.end(summary ?? Self.defaultSummary(behaviour)) }
    case .error(let e): finish(error: true) { () throws(EmitterError) in try stream.error(e) }
    case .throwError(let e):
      // The handler's continuation throws: the bus's own rule applies (KSP-2.5).
      finish(error: true) { () throws(EmitterError) in try stream.error(SerializedError(thrown: e)) }
    case .hang: break
    case .crash(let announced): crash(worker, announced: announced)
    }
    if behaviour.emitAfterFinish {
      // KSP-4.3: once finished, the emitter refuses locally.
      let call = recorder.begin(.emitAfterFinish(h, result: .ok), at: clock.nanoseconds())
      do throws(EmitterError) { try stream.chunk("after the end") } catch { recorder.settle(call, Self.result(error)) }
    }
  }

  static func result(_ error: EmitterError?) -> EmitResult {
    switch error {
    case .noCredit?: .noCredit
    case .cancelled?: .cancelled
    case .closed?, nil: .closed
    }
  }

  /// Producers with intervals shorter than this emit in bursts, one burst per window of
  /// scenario time (1 ms), rather than one timer per chunk.
  static let burstWindow: Int64 = 1_000_000

  /// The most chunks in one batch to an adapter.
  static let maxBatch = 256

  /// Flow control: waits for the consumer's credit, then carries on from chunk `index`.
  func resumeOnCredit(
    _ worker: String, _ behaviour: ProducerBehaviour, _ generator: ChunkGenerator, _ stream: any EmitterUnderTest,
    at index: Int, limit: Int = maxBatch
  ) {
    stream.onCredit { [self] in
      _ = clock.schedule(at: clock.nanoseconds()) {
        self.pump(worker: worker, behaviour: behaviour, generator: generator, stream: stream, next: index, limit: limit)
      }
    }
  }

  /// The agent vanishes: it sends nothing more, and the others are told only if `announced`.
  func crash(_ worker: String, announced: Bool) {
    let first = state.withLock { $0.crashed.insert(worker).inserted }
    guard first else { return }
    recorder.record(.crash(recorder.workerId(worker), announced: announced), at: clock.nanoseconds())
    if let adapters {
      // Kill its process (SIGKILL): every worker it hosted is gone.
      for gone in adapters.kill(worker) {
        state.withLock { _ = $0.crashed.insert(gone) }
        if gone != worker {
          recorder.record(.crash(recorder.workerId(gone), announced: announced), at: clock.nanoseconds())
        }
        if announced { network.reportDown(gone) } else { network.disconnect(gone) }
      }
      return
    }
    if announced { network.reportDown(worker) } else { network.disconnect(worker) }
    // Free what the dead agent held; it is disconnected, so what dispose sends goes nowhere.
    buses[worker]?.dispose()
  }
}
