// A WebSocket transport for the MessageBus of kensho-bus.mjs: one connection to a KSP/1 relay
// (../shared/PROTOCOL.md §11) per worker.
//
//   const transport = new WsTransport({ url: 'ws://127.0.0.1:8080/', token });
//   const bus = new MessageBus({ name: 'consumer', transport });
//   transport.attach(bus);        // frames received go to bus.receive
//   await transport.ready;        // connected (and the relay's first frame seen)
//
// Each KenshoMessage goes out as one text frame of its JSON. Every frame received is a
// candidate message: `pong` and the relay's server_info (KSP-11.3, 11.4) are taken here; a
// frame that is not JSON reaches the bus as `null`, everything else as parsed, so that the bus
// drops and counts what breaks KSP-1.1 (KSP-1.2, as `invalid`) and ignores what is addressed
// to another worker (KSP-1.3, as `not_addressed`): a relay broadcasts.
//
// The transport keeps the connection alive: a text `ping` every `heartbeatMs`, and a
// reconnection when nothing (no `pong`, no frame at all) has come for two heartbeats; after any
// loss, reconnection with exponential backoff (100 ms doubling to 5 s, with jitter).
// Messages sent while disconnected wait in a bounded queue, sent in order once connected again;
// past the bound they are dropped and counted. A relay says nothing of which workers are
// connected, so this transport never reports a peer gone (KSP-8.1): KSP-6 reclaims streams.
import { loadWs } from './ws-lib.mjs';

const OPEN = 1;
const CONNECTING = 0;

export const TRANSPORT_DEFAULTS = Object.freeze({
  heartbeatMs: 15000,
  backoffMinMs: 100,
  backoffMaxMs: 5000,
  maxQueuedMessages: 10000,
  maxQueuedBytes: 16 * 1024 * 1024,
  readyGraceMs: 500,
  closeGraceMs: 1000,
  reconnect: true,
});

/**
 * `url` with `token` as its `token` query parameter (KSP §11) and `label` (the worker's name) as
 * its `worker` query parameter, by which a relay's logs and the kensho-bench harness know the
 * connection; `url` itself without either.
 */
export function urlWithToken(url, token, label) {
  const hasToken = !(token === undefined || token === null || token === '');
  const hasLabel = typeof label === 'string' && label !== '';
  if (!hasToken && !hasLabel) return url;
  const u = new URL(url);
  if (hasToken) u.searchParams.set('token', token);
  if (hasLabel) u.searchParams.set('worker', label);
  return u.toString();
}

export class WsTransport {
  /**
   * @param {object} options
   * @param {string} options.url the relay, `ws://HOST:PORT/`
   * @param {string} [options.token] sent as `?token=`
   * @param {string} [options.label] the worker's name, sent as `?worker=`
   * @param {(message: object|null) => void} [options.onMessage] each candidate message (see attach)
   * @param {number} [options.heartbeatMs] between `ping`s; the connection is renewed after two silent ones
   * @param {number} [options.maxQueuedMessages] / [options.maxQueuedBytes] bounds of the queue kept while disconnected
   * @param {(line: string) => void} [options.log] diagnostics (connection lost, reconnected), one line each
   * @param {boolean} [options.reconnect] false: a lost connection stays lost (a defect, for the harness's tests)
   */
  constructor(options) {
    if (!options || typeof options.url !== 'string') throw new TypeError('WsTransport needs a url');
    this.options = { ...TRANSPORT_DEFAULTS, ...options };
    this.url = options.url;
    this.connectUrl = urlWithToken(options.url, options.token, options.label);
    this.onMessage = options.onMessage ?? null;
    this.log = options.log ?? null;
    this.WebSocket = loadWs().WebSocket;
    this.ws = null;
    this.closed = false;
    this.queue = []; this.queuedBytes = 0;
    this.attempt = 0; this.reconnectTimer = null; this.heartbeatTimer = null; this.readyTimer = null;
    this.lastFrameAt = 0; this.lastError = null; this.serverInfo = null; this.everOpen = false;
    this.counts = { connects: 0, reconnects: 0, framesIn: 0, framesOut: 0, pongs: 0, serverInfo: 0, notJson: 0,
      queued: 0, queueDropped: 0, staleConnections: 0, errors: 0, deliveryFailures: 0 };
    let resolveReady;
    let rejectReady;
    this.ready = new Promise((resolve, reject) => { resolveReady = resolve; rejectReady = reject; });
    this.ready.catch(() => {}); // a transport closed before it connected is not an unhandled rejection
    this.readySettled = false;
    this.settleReady = (error) => {
      if (this.readySettled) return;
      this.readySettled = true;
      clearTimeout(this.readyTimer);
      if (error) rejectReady(error); else resolveReady(this);
    };
    this.connect();
  }

  /** Hands every candidate message to `bus.receive` (KSP-1.2 and 1.3 are the bus's). */
  attach(bus) {
    this.onMessage = (message) => bus.receive(message);
    return this;
  }

  get isOpen() { return this.ws !== null && this.ws.readyState === OPEN; }

  /** Sends one KenshoMessage as one text frame of its JSON; queues it while disconnected. */
  send(message) {
    if (this.closed) return;
    const text = JSON.stringify(message);
    if (this.isOpen && this.queue.length === 0) {
      this.ws.send(text);
      this.counts.framesOut += 1;
      return;
    }
    const size = Buffer.byteLength(text);
    if (this.queue.length >= this.options.maxQueuedMessages || this.queuedBytes + size > this.options.maxQueuedBytes) {
      this.counts.queueDropped += 1;
      return;
    }
    this.queue.push(text);
    this.queuedBytes += size;
    this.counts.queued += 1;
  }

  connect() {
    if (this.closed) return;
    const ws = new this.WebSocket(this.connectUrl, { perMessageDeflate: false, handshakeTimeout: 10000 });
    this.ws = ws;
    ws.on('open', () => {
      if (this.ws !== ws) return;
      this.counts.connects += 1;
      if (this.everOpen) {
        this.counts.reconnects += 1;
        if (this.lastError) this.log?.(`relay ${this.url}: connected again`);
      }
      this.everOpen = true;
      this.attempt = 0;
      this.lastError = null;
      this.lastFrameAt = Date.now();
      // Ready at the relay's first frame (its server_info, KSP-11.4), or soon after opening
      // when the relay sends none.
      if (!this.readySettled) this.readyTimer = setTimeout(() => this.settleReady(), this.options.readyGraceMs);
      const queue = this.queue;
      this.queue = []; this.queuedBytes = 0;
      for (const text of queue) { ws.send(text); this.counts.framesOut += 1; }
      this.startHeartbeat(ws);
    });
    ws.on('message', (data, isBinary) => this.onFrame(ws, data, isBinary));
    ws.on('error', (e) => {
      this.counts.errors += 1;
      const first = this.lastError === null;
      this.lastError = e?.message ?? String(e);
      if (first && !this.closed) this.log?.(`relay ${this.url}: ${this.lastError}; reconnecting`);
    });
    ws.on('close', (code, reason) => {
      if (this.ws !== ws) return;
      this.stopHeartbeat();
      this.ws = null;
      if (this.closed) return;
      if (this.lastError === null) {
        this.lastError = `connection closed (${code}${reason?.length ? ` ${reason}` : ''})`;
        this.log?.(`relay ${this.url}: ${this.lastError}; reconnecting`);
      }
      this.scheduleReconnect();
    });
  }

  scheduleReconnect() {
    if (!this.options.reconnect) return;
    const { backoffMinMs, backoffMaxMs } = this.options;
    const base = Math.min(backoffMaxMs, backoffMinMs * 2 ** Math.min(this.attempt, 30));
    this.attempt += 1;
    const delay = base / 2 + Math.random() * (base / 2); // "equal jitter": half fixed, half random
    this.reconnectTimer = setTimeout(() => { this.reconnectTimer = null; this.connect(); }, delay);
  }

  startHeartbeat(ws) {
    this.stopHeartbeat();
    const every = this.options.heartbeatMs;
    this.heartbeatTimer = setInterval(() => {
      if (this.ws !== ws || ws.readyState !== OPEN) return;
      if (Date.now() - this.lastFrameAt > 2 * every) { // two heartbeats without a pong or any frame
        this.counts.staleConnections += 1;
        this.lastError = `no frame for ${2 * every} ms`;
        this.log?.(`relay ${this.url}: ${this.lastError}; reconnecting`);
        ws.terminate();
        return;
      }
      ws.send('ping'); // KSP-11.3
    }, every);
  }

  stopHeartbeat() {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
  }

  onFrame(ws, data, isBinary) {
    if (this.ws !== ws || this.closed) return;
    this.lastFrameAt = Date.now();
    this.counts.framesIn += 1;
    this.settleReady();
    const text = Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.from(data).toString('utf8');
    if (!isBinary && text === 'pong') { this.counts.pongs += 1; return; }
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      this.counts.notJson += 1;
      message = null; // not JSON: the bus drops and counts it (KSP-1.2)
    }
    if (message !== null && typeof message === 'object' && message.type === 'server_info') {
      this.counts.serverInfo += 1; // KSP-11.4: the relay describing itself, not a KenshoMessage
      this.serverInfo = message;
      return;
    }
    try {
      this.onMessage?.(message);
    } catch (e) {
      this.counts.deliveryFailures += 1;
      this.log?.(`relay ${this.url}: delivery failed: ${e?.stack ?? e}`);
    }
  }

  /** Counters, the queue and the state of the connection. */
  stats() {
    return { ...this.counts, open: this.isOpen, queueLength: this.queue.length, queuedBytes: this.queuedBytes,
      lastError: this.lastError };
  }

  /** Stops everything: timers, reconnection, the connection (closed with 1000 after what was sent). */
  close() {
    if (this.closed) return this.closing;
    this.closed = true;
    this.settleReady(new Error(`transport to ${this.url} closed before it connected`));
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.readyTimer);
    this.stopHeartbeat();
    this.queue = []; this.queuedBytes = 0;
    const ws = this.ws;
    this.ws = null;
    this.closing = new Promise((resolve) => {
      if (!ws || ws.readyState === 3) return resolve();
      ws.once('close', () => { clearTimeout(timer); resolve(); });
      const timer = setTimeout(() => ws.terminate(), this.options.closeGraceMs);
      if (ws.readyState === CONNECTING) ws.terminate();
      else ws.close(1000);
    });
    return this.closing;
  }
}

/** A transport for a bus: `createWsTransport({url, token, ...})`, then `transport.attach(bus)`. */
export const createWsTransport = (options) => new WsTransport(options);
