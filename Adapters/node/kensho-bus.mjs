// An independent implementation of the Kensho Streaming Protocol, KSP/1 (../shared/PROTOCOL.md),
// in plain JavaScript for node 20: no packages. One MessageBus per worker; the transport and
// the clock are passed in, so the same bus runs on a real network or under a test harness.
//
// DEFECTS lists deliberate bugs that can be switched on, one name each, to prove that the
// conformance suite catches them (see Adapters/node/README.md).

export const ErrorCode = Object.freeze({
  METHOD_NOT_FOUND: 'METHOD_NOT_FOUND',
  STREAM_ERROR: 'STREAM_ERROR',
  STREAM_TIMEOUT: 'STREAM_TIMEOUT',
  STREAM_CANCELLED: 'STREAM_CANCELLED',
  PRODUCER_GONE: 'PRODUCER_GONE',
  BUS_DISPOSED: 'BUS_DISPOSED',
});

export const DEFECTS = Object.freeze({
  'chunks-to-self': 'The emitter addresses chunks, end and error to the producer itself (KSP-3.1, 3.2, 4.1).',
  'request-instead-of-stream-request': 'Streams are opened with a `request` carrying a streamId (KSP-2.1, 2.2).',
  'start-failure-as-response': 'An unknown method is answered with a `response` (KSP-2.3).',
  'no-idle-timeout': 'Streams never time out: the sweep finds nothing idle (KSP-6.2).',
  'sweep-never-runs': 'The sweep timer is never started (KSP-6.1, 6.2).',
  'entry-left-after-error': 'A stream that fails keeps its activeStreams entry (KSP-4.2, 9.1).',
  'duplicate-reruns-handler': 'A repeated stream_request runs the handler again (KSP-2.4).',
  'error-code-dropped': 'stream.error sends no code, so the consumer sees STREAM_ERROR (KSP-5.1, 5.2).',
  'chunks-reordered': 'The consumer delivers chunks in arrival order, ignoring seq (KSP-3.4, 4.4).',
  'last-chunk-dropped': 'The emitter silently drops the last chunk before end (KSP-3.1, 4.1).',
  'cancel-from-anyone': 'A stream_cancel from any worker cancels the stream (KSP-7.3).',
  'throwing-callback-leaves-entry': 'An onEnd/onError that throws leaves the entry, and the sweep calls onError again (KSP-4.2).',
  'finished-streams-kept': 'Every finished stream is kept in a side table of the consumer, forever; activeStreams stays right (KSP-9.2).',
  'cancelled-emitters-kept': 'The producer keeps the emitter of every cancelled stream in a side table; its counts stay right (KSP-9.2).',
});

const TYPES = new Set(['request', 'response', 'broadcast', 'stream_request', 'stream_chunk', 'stream_end',
  'stream_error', 'stream_cancel']);
const WORKER = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;

/** The first problem with a received message (KSP-1.1/1.2), or null. */
export function validate(m) {
  if (m === null || typeof m !== 'object' || Array.isArray(m)) return 'not an object';
  const id = (v) => typeof v === 'string' && v.length >= 1 && v.length <= 256;
  if (!id(m.messageId)) return 'messageId';
  if (typeof m.sourceWorker !== 'string' || !WORKER.test(m.sourceWorker)) return 'sourceWorker';
  if (typeof m.targetWorker !== 'string' || (m.targetWorker !== '*' && !WORKER.test(m.targetWorker))) return 'targetWorker';
  if (!TYPES.has(m.type)) return 'type';
  if (!('payload' in m)) return 'payload';
  if (m.type.startsWith('stream_') && !id(m.streamId)) return 'streamId';
  if (m.streamId !== undefined && !id(m.streamId)) return 'streamId';
  if (m.traceId !== undefined && typeof m.traceId !== 'string') return 'traceId';
  if (m.correlationId !== undefined && !id(m.correlationId)) return 'correlationId';
  if (m.type === 'response' && m.correlationId === undefined) return 'correlationId';
  if (m.error !== undefined && (m.error === null || typeof m.error !== 'object' || typeof m.error.name !== 'string'
    || typeof m.error.message !== 'string')) return 'error';
  if (m.metadata !== undefined) {
    if (m.metadata === null || typeof m.metadata !== 'object' || Array.isArray(m.metadata)) return 'metadata';
    const { seq, credit } = m.metadata;
    if (seq !== undefined && !(Number.isInteger(seq) && seq >= 0)) return 'metadata.seq';
    if (credit !== undefined && !(Number.isInteger(credit) && credit >= 0)) return 'metadata.credit';
  }
  return null;
}

/** A clock that moves only when told to: timers run in deadline order when it advances. */
export class ManualClock {
  constructor() { this.time = 0; this.timers = []; this.order = 0; }
  now() { return this.time; }
  setTimeout(fn, ms) {
    const t = { at: this.time + Math.max(0, ms), order: this.order++, fn, cancelled: false };
    this.timers.push(t);
    return t;
  }
  clearTimeout(t) { if (t) t.cancelled = true; }
  next() {
    this.timers = this.timers.filter((t) => !t.cancelled);
    let best = null;
    for (const t of this.timers) if (!best || t.at < best.at || (t.at === best.at && t.order < best.order)) best = t;
    return best;
  }
  nextDeadline() { const t = this.next(); return t ? t.at : null; }
  advanceTo(time) {
    for (;;) {
      const t = this.next();
      if (!t || t.at > time) break;
      t.cancelled = true;
      this.time = Math.max(this.time, t.at);
      t.fn();
    }
    this.time = Math.max(this.time, time);
  }
}

/** The real clock. */
export const systemClock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (t) => clearTimeout(t),
};

class StreamError extends Error {
  constructor(message, code, name = 'StreamError') { super(message); this.name = name; this.code = code; }
}

/** Errors a producer's emitter raises locally (KSP-4.3, 7.2, KSP-FC). */
export class EmitterError extends Error {
  constructor(kind) { super(`emitter ${kind}`); this.kind = kind; }
}

const serialize = (e) => {
  if (e && typeof e === 'object') {
    const out = { name: String(e.name ?? 'Error'), message: String(e.message ?? '') };
    if (e.code !== undefined && e.code !== null) out.code = String(e.code);
    if (typeof e.stack === 'string' && e.stack.length > 0 && !(e instanceof Error)) out.stack = e.stack;
    return out;
  }
  return { name: 'Error', message: String(e) };
};

/**
 * The producer's side of a stream: the `stream` a handler receives (KSP-2.2).
 *
 * Flow control (KSP-FC, docs/FLOW-CONTROL.md): `limit` is the consumer's cumulative grant,
 * "chunks with a seq below it may be sent", starting at the window offered; null without
 * flow control.
 */
class Emitter {
  constructor(bus, streamId, consumer, traceId, window) {
    this.bus = bus; this.streamId = streamId; this.consumer = consumer; this.traceId = traceId;
    this.seq = 0; this.state = 'open'; this.limit = window; this.window = window;
    this.onCancelHandler = null; this.onCreditHandler = null; this.pendingLast = null;
  }
  get isActive() { return this.state === 'open'; }
  get cancelled() { return this.state === 'cancelled'; }
  get isFlowControlled() { return this.limit !== null; }
  /** Chunks the consumer allows now; null without flow control. */
  get availableCredit() { return this.limit === null ? null : Math.max(0, this.limit - this.seq); }
  check() { if (this.state !== 'open') throw new EmitterError(this.state); }
  chunk(data) {
    this.check();
    if (this.limit !== null && this.seq >= this.limit) throw new EmitterError('no_credit');
    const metadata = { seq: this.seq };
    if (this.limit !== null && this.seq === 0) metadata.credit = this.window; // acknowledges the offer
    this.seq += 1;
    const message = this.bus.message(this.target(), 'stream_chunk', data, { streamId: this.streamId, traceId: this.traceId, metadata });
    if (this.bus.defects.has('last-chunk-dropped')) {
      // Holds each chunk back until the next one; the last one is never sent.
      if (this.pendingLast) this.bus.send(this.pendingLast);
      this.pendingLast = message;
      return;
    }
    this.bus.send(message);
  }
  end(summary = null) {
    this.check();
    this.state = 'closed';
    this.bus.finish(this, 'stream_end', summary, undefined);
    this.stop('closed');
  }
  error(e) {
    this.check();
    const error = serialize(e);
    if (this.bus.defects.has('error-code-dropped')) delete error.code;
    else if (error.code === undefined) error.code = ErrorCode.STREAM_ERROR;
    this.state = 'closed';
    this.bus.finish(this, 'stream_error', null, error);
    this.stop('closed');
  }
  onCancel(handler) { if (this.cancelled) handler(null); else if (this.isActive) this.onCancelHandler = handler; }
  /**
   * Runs `handler` once: when credit is next available (at once if it is now), or when the
   * emitter stops (cancelled, consumer gone, finished, bus disposed), so that a producer that
   * waits for credit always resumes and then finds its next call refused.
   */
  onCredit(handler) {
    if (!this.isActive || this.limit === null || this.availableCredit > 0) handler();
    else this.onCreditHandler = handler;
  }
  /** Applies a cumulative grant; a grant at or below the current limit changes nothing. */
  grant(limit) {
    if (this.limit === null || limit <= this.limit) return;
    this.limit = limit;
    if (this.availableCredit > 0) this.resume();
  }
  /** Runs and forgets the handler waiting for credit, if any. */
  resume() {
    const handler = this.onCreditHandler;
    this.onCreditHandler = null;
    if (!handler) return;
    try { handler(); } catch { this.bus.callbackFailures += 1; }
  }
  /**
   * The emitter stops sending (KSP-4.3, 7.2); everything it holds for the stream is let go:
   * the cancel handler runs (when `reason` is given), a producer waiting for credit resumes.
   */
  stop(state, reason) {
    const wasOpen = this.state === 'open';
    if (wasOpen) this.state = state;
    const onCancel = this.onCancelHandler;
    this.onCancelHandler = null;
    if (wasOpen && state === 'cancelled' && reason !== undefined && onCancel) {
      try { onCancel(reason); } catch { this.bus.callbackFailures += 1; }
    }
    this.resume();
  }
  target() { return this.bus.defects.has('chunks-to-self') ? this.bus.name : this.consumer; }
}

/** The KSP/1 bus of one worker. */
export class MessageBus {
  constructor({ name, transport, clock = systemClock, streamTimeoutMs = 300000, sweepIntervalMs = 60000,
    creditWindow = null, defects = [] }) {
    if (!WORKER.test(name)) throw new Error(`invalid worker name ${name}`);
    Object.assign(this, { name, transport, clock, streamTimeoutMs, sweepIntervalMs, creditWindow });
    this.defects = new Set(defects);
    this.activeStreams = new Map(); // streamId → entry (consumer side)
    this.emitters = new Map(); // streamId → Emitter (producer side)
    this.methods = new Map();
    this.seen = new Set(); this.seenOrder = []; // recent stream_request ids (KSP-2.4)
    this.dropped = {}; this.callbackFailures = 0; this.received = 0; this.sent = 0;
    this.sweepTimer = null; this.disposed = false;
    this.finishedStreams = []; this.cancelledEmitters = []; // only the two leak defects fill these
    this.prefix = Math.random().toString(36).slice(2, 8); this.counter = 0;
  }

  id() { return `${this.prefix}-${(++this.counter).toString(36)}`; }
  drop(reason) { this.dropped[reason] = (this.dropped[reason] ?? 0) + 1; }
  message(target, type, payload, extra = {}) {
    const m = { messageId: this.id(), sourceWorker: this.name, targetWorker: target, type, payload };
    for (const [k, v] of Object.entries(extra)) if (v !== undefined && v !== null) m[k] = v;
    return m;
  }
  send(m) { this.sent += 1; this.transport.send(m); }

  // Consumer API -----------------------------------------------------------------------------

  callAgentStream(target, method, payload, callbacks = {}) {
    if (this.disposed) throw new StreamError('bus disposed', ErrorCode.BUS_DISPOSED);
    const streamId = this.id();
    const window = callbacks.creditWindow ?? this.creditWindow;
    const entry = { producer: target, callbacks, timeout: callbacks.timeout ?? this.streamTimeoutMs,
      lastActivity: this.clock.now(), nextSeq: 0, buffered: new Map(), endCount: null, endSummary: null,
      traceId: callbacks.traceId, window, acked: false, grantedLimit: 0, unnumbered: 0 };
    this.activeStreams.set(streamId, entry); // KSP-2.1: recorded before sending
    this.armSweep();
    const type = this.defects.has('request-instead-of-stream-request') ? 'request' : 'stream_request';
    const metadata = window > 0 ? { credit: window } : undefined;
    this.send(this.message(target, type, { method, args: payload }, { streamId, traceId: callbacks.traceId, metadata }));
    return streamId;
  }

  cancelStream(streamId, reason = null) {
    const entry = this.activeStreams.get(streamId);
    if (!entry) return false;
    this.activeStreams.delete(streamId);
    this.send(this.message(entry.producer, 'stream_cancel', reason, { streamId, traceId: entry.traceId }));
    this.terminal(streamId, entry, 'onError', serialize(new StreamError('Stream cancelled', ErrorCode.STREAM_CANCELLED)));
    return true;
  }

  // Producer API -----------------------------------------------------------------------------

  registerStreamMethod(method, handler) { this.methods.set(method, handler); }

  finish(emitter, type, payload, error) {
    if (emitter.pendingLast && type === 'stream_end') emitter.pendingLast = null; // the dropped last chunk
    this.emitters.delete(emitter.streamId);
    this.send(this.message(emitter.target(), type, payload,
      { streamId: emitter.streamId, traceId: emitter.traceId, error, metadata: { seq: emitter.seq } }));
  }

  // Receiving --------------------------------------------------------------------------------

  receive(m) {
    this.received += 1;
    if (this.disposed) return this.drop('disposed');
    if (m && m.targetWorker !== this.name && m.targetWorker !== '*') return this.drop('not_addressed');
    if (validate(m) !== null && !(m && m.type === 'stream_error' && m.error === undefined)) return this.drop('invalid');
    switch (m.type) {
      case 'stream_request': return this.onStreamRequest(m);
      case 'request': return this.drop('unsupported'); // request/response is outside this bus

      case 'stream_chunk': return this.onChunk(m);
      case 'stream_end': case 'stream_error': return this.onTerminal(m);
      case 'stream_cancel': return this.onCancel(m);
      default: return this.drop('unsupported');
    }
  }

  onStreamRequest(m) {
    const key = `${m.sourceWorker}\u0000${m.messageId}`;
    const repeated = this.emitters.has(m.streamId) || this.seen.has(key);
    if (repeated && !this.defects.has('duplicate-reruns-handler')) return this.drop('duplicate');
    if (!this.seen.has(key)) {
      this.seen.add(key); this.seenOrder.push(key);
      if (this.seenOrder.length > 1024) this.seen.delete(this.seenOrder.shift());
    }
    const method = m.payload && typeof m.payload === 'object' ? m.payload.method : undefined;
    const handler = this.methods.get(method);
    if (!handler) {
      const error = { name: 'MethodNotFoundError', message: `Stream method '${method}' is not registered on ${this.name}`,
        code: ErrorCode.METHOD_NOT_FOUND };
      if (this.defects.has('start-failure-as-response')) {
        return this.send(this.message(m.sourceWorker, 'response', null, { correlationId: m.messageId, error }));
      }
      return this.send(this.message(m.sourceWorker, 'stream_error', null, { streamId: m.streamId, traceId: m.traceId, error }));
    }
    const offered = m.metadata?.credit;
    const window = Number.isInteger(offered) && offered > 0 ? offered : null; // KSP-FC offer
    const emitter = new Emitter(this, m.streamId, m.sourceWorker, m.traceId, window);
    this.emitters.set(m.streamId, emitter);
    const fail = (e) => { if (emitter.isActive) emitter.error(e); }; // KSP-2.5
    try {
      const result = handler(m.payload.args ?? null, emitter);
      if (result && typeof result.then === 'function') result.then(undefined, fail);
    } catch (e) {
      fail(e);
    }
  }

  onChunk(m) {
    // A credit frame (KSP-FC) is known by what it carries, metadata.creditLimit, never by which
    // table has an entry for its stream: a worker may consume a stream it produces.
    if (m.metadata?.creditLimit !== undefined) return this.onCreditFrame(m);
    const entry = this.activeStreams.get(m.streamId);
    if (!entry) return this.drop('unknown_stream'); // KSP-3.5
    if (entry.producer !== m.sourceWorker) return this.drop('wrong_source');
    entry.lastActivity = this.clock.now(); // KSP-3.3: a chunk from the producer, whatever becomes of it
    this.acceptChunk(m, entry);
    if (entry.window && this.activeStreams.get(m.streamId) === entry) this.grantIfDue(m, entry);
  }

  /** Takes a chunk from the stream's producer: delivers it in seq order, holds it back, or drops it (KSP-3.4). */
  acceptChunk(m, entry) {
    const seq = m.metadata?.seq;
    if (seq === undefined || this.defects.has('chunks-reordered')) {
      if (seq === undefined) entry.unnumbered += 1;
      return this.deliverChunk(m.streamId, entry, m.payload);
    }
    if (seq < entry.nextSeq || entry.buffered.has(seq)) return this.drop('duplicate');
    if (seq > entry.nextSeq) {
      if (entry.buffered.size >= 1024) return this.drop('reorder_overflow'); // KSP-3.4: at least 1024 held
      entry.buffered.set(seq, m.payload);
      return;
    }
    entry.nextSeq += 1;
    this.deliverChunk(m.streamId, entry, m.payload);
    while (entry.buffered.has(entry.nextSeq) && this.activeStreams.get(m.streamId) === entry) {
      const payload = entry.buffered.get(entry.nextSeq);
      entry.buffered.delete(entry.nextSeq);
      entry.nextSeq += 1;
      this.deliverChunk(m.streamId, entry, payload);
    }
    if (entry.endCount !== null && entry.nextSeq >= entry.endCount && this.activeStreams.get(m.streamId) === entry) {
      this.activeStreams.delete(m.streamId);
      this.terminal(m.streamId, entry, 'onEnd', entry.endSummary);
    }
  }

  /**
   * KSP-FC, consumer side: once the producer acknowledged the offer, grants "chunks with a seq
   * below N may be sent", N = chunks taken in order + the window, each time N has moved half a
   * window. Repeats and chunks held back out of order move nothing.
   */
  grantIfDue(m, entry) {
    if (Number.isInteger(m.metadata?.credit)) entry.acked = true;
    if (!entry.acked) return;
    if (entry.grantedLimit === 0) entry.grantedLimit = entry.window;
    const limit = entry.nextSeq + entry.unnumbered + entry.window;
    if (limit - entry.grantedLimit < Math.max(1, Math.floor(entry.window / 2))) return;
    entry.grantedLimit = limit;
    this.sendGrant(m.streamId, entry);
  }

  sendGrant(streamId, entry) {
    this.send(this.message(entry.producer, 'stream_chunk', null,
      { streamId, traceId: entry.traceId, metadata: { creditLimit: entry.grantedLimit } }));
  }

  /** A credit frame from the consumer of a stream produced here (KSP-FC). */
  onCreditFrame(m) {
    const limit = m.metadata.creditLimit;
    if (m.metadata.seq !== undefined || !Number.isInteger(limit) || limit < 0) return this.drop('invalid');
    const emitter = this.emitters.get(m.streamId);
    if (!emitter) return this.drop('unknown_stream');
    if (emitter.consumer !== m.sourceWorker) return this.drop('wrong_source');
    emitter.grant(limit);
  }

  deliverChunk(streamId, entry, payload) {
    try {
      entry.callbacks.onChunk?.(payload);
    } catch {
      this.callbackFailures += 1; // KSP-5.4
    }
  }

  onTerminal(m) {
    const entry = this.activeStreams.get(m.streamId);
    if (!entry) return this.drop('unknown_stream');
    if (entry.producer !== m.sourceWorker) return this.drop('wrong_source');
    if (m.type === 'stream_end') {
      const count = m.metadata?.seq;
      if (Number.isInteger(count) && count > entry.nextSeq && !this.defects.has('chunks-reordered')) {
        entry.endCount = count; entry.endSummary = m.payload; entry.lastActivity = this.clock.now(); // KSP-4.4
        return;
      }
      this.activeStreams.delete(m.streamId);
      return this.terminal(m.streamId, entry, 'onEnd', m.payload);
    }
    if (!this.defects.has('entry-left-after-error')) this.activeStreams.delete(m.streamId);
    const error = m.error ? { ...m.error } : { name: 'Error', message: 'Unknown stream error' }; // KSP-5.3
    if (error.code === undefined) error.code = ErrorCode.STREAM_ERROR;
    this.terminal(m.streamId, entry, 'onError', error);
  }

  /** Runs a terminal callback once; the entry is already gone (KSP-4.2). */
  terminal(streamId, entry, kind, value) {
    if (entry.done && !this.defects.has('entry-left-after-error')) return;
    entry.done = true;
    if (this.defects.has('finished-streams-kept')) this.finishedStreams.push({ streamId, entry, value });
    try {
      entry.callbacks[kind]?.(value);
    } catch {
      this.callbackFailures += 1;
      if (this.defects.has('throwing-callback-leaves-entry')) {
        // The defect: the entry stays, and the next sweep fails the stream again.
        entry.lingering = true;
        entry.done = false;
        this.activeStreams.set(streamId, entry);
        this.armSweep();
      }
    }
  }

  onCancel(m) {
    const emitter = this.emitters.get(m.streamId);
    if (!emitter || (emitter.consumer !== m.sourceWorker && !this.defects.has('cancel-from-anyone'))) {
      return this.drop('foreign_cancel'); // KSP-7.3
    }
    this.emitters.delete(m.streamId);
    if (this.defects.has('cancelled-emitters-kept')) this.cancelledEmitters.push({ emitter, reason: m.payload });
    emitter.stop('cancelled', m.payload); // KSP-7.2; releases what the emitter holds (KSP-9.2)
  }

  // Time -------------------------------------------------------------------------------------

  armSweep() {
    if (this.sweepTimer || this.disposed || this.defects.has('sweep-never-runs')) return;
    this.sweepTimer = this.clock.setTimeout(() => { this.sweepTimer = null; this.sweep(); }, this.sweepIntervalMs);
  }

  sweep() {
    const now = this.clock.now();
    if (!this.defects.has('no-idle-timeout')) {
      for (const [streamId, entry] of [...this.activeStreams]) {
        if (now - entry.lastActivity > entry.timeout) { // KSP-6.2
          this.activeStreams.delete(streamId);
          this.send(this.message(entry.producer, 'stream_cancel', ErrorCode.STREAM_TIMEOUT, { streamId, traceId: entry.traceId }));
          this.terminal(streamId, entry, 'onError', serialize(new StreamError('Stream timed out', ErrorCode.STREAM_TIMEOUT)));
        } else if (entry.acked && now - entry.lastActivity >= this.sweepIntervalMs) {
          // KSP-FC: an idle stream repeats its standing grant, in case the last one was lost.
          this.sendGrant(streamId, entry);
        }
      }
    }
    for (const [streamId, entry] of [...this.activeStreams]) {
      if (!entry.lingering) continue;
      this.activeStreams.delete(streamId);
      this.terminal(streamId, entry, 'onError', serialize(new StreamError('Stream timed out', ErrorCode.STREAM_TIMEOUT)));
    }
    if (this.activeStreams.size > 0) this.armSweep();
  }

  // Peers and disposal -----------------------------------------------------------------------

  peerDown(worker) {
    for (const [streamId, entry] of [...this.activeStreams]) {
      if (entry.producer !== worker) continue;
      this.activeStreams.delete(streamId);
      this.terminal(streamId, entry, 'onError', serialize(new StreamError(`Producer ${worker} is gone`, ErrorCode.PRODUCER_GONE)));
    }
    for (const [streamId, emitter] of [...this.emitters]) {
      if (emitter.consumer !== worker) continue;
      this.emitters.delete(streamId);
      emitter.stop('cancelled', 'consumer gone');
    }
  }

  dispose() {
    if (this.disposed) return;
    this.disposed = true;
    if (this.sweepTimer) this.clock.clearTimeout(this.sweepTimer);
    this.sweepTimer = null;
    const disposed = serialize(new StreamError('Bus disposed', ErrorCode.BUS_DISPOSED));
    for (const [streamId, entry] of [...this.activeStreams]) {
      this.activeStreams.delete(streamId);
      this.send(this.message(entry.producer, 'stream_cancel', 'bus disposed', { streamId, traceId: entry.traceId }));
      this.terminal(streamId, entry, 'onError', disposed);
    }
    for (const [streamId, emitter] of [...this.emitters]) {
      this.emitters.delete(streamId);
      emitter.stop('cancelled');
      this.send(this.message(emitter.consumer, 'stream_error', null,
        { streamId, traceId: emitter.traceId, error: disposed, metadata: { seq: emitter.seq } }));
    }
    this.transport.close?.();
  }

  stats() {
    return { activeStreams: this.activeStreams.size, emitters: this.emitters.size, dropped: { ...this.dropped },
      callbackFailures: this.callbackFailures, received: this.received, sent: this.sent };
  }
}
