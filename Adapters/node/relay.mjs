#!/usr/bin/env node
// A KSP/1 relay (../shared/PROTOCOL.md §11, KSP-11.1 to 11.6) on the `ws` library: a WebSocket
// server on path `/` that forwards every frame it receives, unchanged and of the same kind, to
// every other admitted connection, in the order received. It never parses what it forwards.
//
//   node Adapters/node/relay.mjs --listen 127.0.0.1:8080 [--token T] [--max-frame-bytes N]
//                                [--max-buffered-bytes N] [--defect NAME]... [--list-defects]
//
// As a module: `startRelay({host, port, token, maxFrameBytes, maxBufferedBytes, defects})`
// resolves to `{url, host, port, defects, stats(), close()}`.
//
// RELAY_DEFECTS lists deliberate bugs, one per KSP-11 rule, that `--defect NAME` (or
// `KENSHO_RELAY_DEFECTS=a,b`) switches on, to prove that kensho-bench's relay checks catch them
// (see Adapters/node/README.md). Without any, the relay behaves as the protocol says.
import { createHash, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadWs } from './ws-lib.mjs';

export const RELAY_NAME = 'kensho-js-relay';
export const RELAY_VERSION = '1';
export const DEFAULTS = Object.freeze({
  host: '127.0.0.1',
  port: 8080, // PROTOCOL.md §11
  maxFrameBytes: 1024 * 1024,
  maxBufferedBytes: 8 * 1024 * 1024,
});

/** Deliberate bugs (name → what it does, and the rule it breaks). None is on unless asked for. */
export const RELAY_DEFECTS = Object.freeze({
  echo: 'Every forwarded frame is also sent back to its sender (KSP-11.1).',
  'binary-as-text': 'Binary frames are forwarded as text frames, same bytes (KSP-11.1).',
  'drop-some': 'Every 7th frame to forward is silently not sent to one of its receivers, the newest (KSP-11.1).',
  reorder: 'Every 5th frame of a sender is held and sent after its next one (or 100 ms later) (KSP-11.2).',
  'forward-ping': 'A text ping is answered pong and also forwarded to the others (KSP-11.3).',
  'pong-to-all': 'The pong goes to every open connection, not only to the ping\'s sender (KSP-11.3).',
  'no-server-info': 'No server_info frame on connect (KSP-11.4, SHOULD).',
  'no-auth': 'With a token set, upgrades without a valid one are admitted anyway (KSP-11.5).',
  unbounded: 'Never drops for a slow receiver: everything is buffered for it, without bound (KSP-11.6, SHOULD).',
});

/** The defect names, checked and without repeats; throws a RangeError naming the known ones. */
export function checkDefects(names) {
  const list = [];
  for (const name of names ?? []) {
    if (!Object.hasOwn(RELAY_DEFECTS, name)) {
      throw new RangeError(`unknown defect ${JSON.stringify(name)}; known: ${Object.keys(RELAY_DEFECTS).join(', ')}`);
    }
    if (!list.includes(name)) list.push(name);
  }
  return list;
}

const DROP_SOME_EVERY = 7;
const REORDER_EVERY = 5;
const REORDER_FLUSH_MS = 100;

const OPEN = 1;
const TEXT = Object.freeze({ binary: false });
const BINARY = Object.freeze({ binary: true });
const PONG = 'pong';
const CLOSE_GRACE_MS = 1000;

const digest = (s) => createHash('sha256').update(String(s)).digest();

/** Formats `host:port` for a URL (IPv6 in brackets). */
const hostForUrl = (host) => (host.includes(':') && !host.startsWith('[') ? `[${host}]` : host);

/**
 * Starts a relay. Resolves once it listens; rejects when it cannot (e.g. EADDRINUSE).
 *
 * - `port` 0: a port the system chooses (see `port` of the result).
 * - `token`: when set, an upgrade must carry it (`?token=` or `Authorization: Bearer`), or it is
 *   refused with HTTP 401 before the upgrade (KSP-11.5).
 * - `maxFrameBytes`: a larger frame closes its connection with 1009.
 * - `maxBufferedBytes`: what may wait in the relay for one receiver; a frame that does not fit
 *   is dropped for that receiver and counted (KSP-11.6). A receiver with nothing waiting always
 *   takes the frame, so the bound is the larger of this and one frame.
 * - `defects`: names from RELAY_DEFECTS, deliberate bugs for testing the tests (default none).
 */
export async function startRelay(options = {}) {
  const { WebSocketServer } = loadWs();
  const host = options.host ?? DEFAULTS.host;
  const requestedPort = options.port ?? DEFAULTS.port;
  const maxFrameBytes = options.maxFrameBytes ?? DEFAULTS.maxFrameBytes;
  const maxBufferedBytes = options.maxBufferedBytes ?? DEFAULTS.maxBufferedBytes;
  const token = options.token === undefined || options.token === null || options.token === '' ? null : String(options.token);
  for (const [name, value] of [['maxFrameBytes', maxFrameBytes], ['maxBufferedBytes', maxBufferedBytes]]) {
    if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer, got ${value}`);
  }
  if (!Number.isInteger(requestedPort) || requestedPort < 0 || requestedPort > 65535) {
    throw new RangeError(`port must be an integer from 0 to 65535, got ${requestedPort}`);
  }
  const tokenDigest = token === null ? null : digest(token);
  const defectList = Object.freeze(checkDefects(options.defects));
  const defect = Object.fromEntries(Object.keys(RELAY_DEFECTS).map((name) => [name, defectList.includes(name)]));
  let toForward = 0; // frames handed to forward(), for drop-some

  const counters = { connections: 0, open: 0, framesIn: 0, framesOut: 0, dropped: 0, refused: 0, pings: 0,
    oversized: 0, errors: 0 };
  let clients = []; // admitted, open connections, in the order they came
  let nextId = 1;
  let closing = null; // the promise of close(), once called

  // Frames to one receiver are written with its socket corked and sent together once the
  // frames at hand (one read of a sender's socket, which ws parses synchronously) are handed
  // out: one write per receiver and read instead of one per frame.
  let corked = [];
  const uncorkAll = () => {
    const sockets = corked;
    corked = [];
    for (const socket of sockets) {
      socket.kenshoCorked = false;
      socket.uncork();
    }
  };
  const cork = (socket) => {
    if (socket.kenshoCorked || typeof socket.cork !== 'function') return;
    socket.kenshoCorked = true;
    socket.cork();
    if (corked.push(socket) === 1) process.nextTick(uncorkAll);
  };

  const wss = new WebSocketServer({ noServer: true, maxPayload: maxFrameBytes, perMessageDeflate: false,
    clientTracking: false });

  function authorized(req, url) {
    const offered = [];
    const query = url.searchParams.get('token');
    if (query !== null) offered.push(query);
    const header = req.headers.authorization;
    if (typeof header === 'string') {
      const match = /^\s*Bearer\s+(\S+)\s*$/i.exec(header);
      if (match) offered.push(match[1]);
    }
    return offered.some((t) => timingSafeEqual(digest(t), tokenDigest));
  }

  function refuse(socket, status, reason, headers = {}) {
    const body = `${status} ${reason}\n`;
    const lines = [`HTTP/1.1 ${status} ${reason}`, 'Connection: close', 'Content-Type: text/plain; charset=utf-8',
      `Content-Length: ${Buffer.byteLength(body)}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
    // Whatever the client sent after its request (frames included) is never read.
    socket.removeAllListeners('data');
    socket.end(`${lines.join('\r\n')}\r\n\r\n${body}`, () => socket.destroy());
  }

  /** Sends one frame to one receiver, or drops it for that receiver when its buffer is full. */
  function deliver(other, data, kind) {
    const peer = other.ws;
    if (peer.readyState !== OPEN) return;
    const waiting = peer.bufferedAmount;
    if (!defect.unbounded && waiting > 0 && waiting + data.length > maxBufferedBytes) { // KSP-11.6: drop for it, count, go on
      other.dropped += 1;
      counters.dropped += 1;
      return;
    }
    if (peer._socket) cork(peer._socket);
    peer.send(data, kind); // the received buffer, as it came (KSP-11.1, 11.2)
    other.framesOut += 1;
    counters.framesOut += 1;
    const after = peer.bufferedAmount;
    if (after > other.maxBufferedAmount) other.maxBufferedAmount = after;
  }

  /** drop-some's victim: the open connection other than `client` that came last. */
  function newestReceiver(client) {
    for (let i = clients.length - 1; i >= 0; i -= 1) {
      if (clients[i] !== client && clients[i].ws.readyState === OPEN) return clients[i];
    }
    return null;
  }

  /** Sends a frame of `client` to every other open connection (KSP-11.1), never back to it. */
  function forward(client, data, isBinary) {
    const kind = isBinary && !defect['binary-as-text'] ? BINARY : TEXT;
    toForward += 1;
    const skipped = defect['drop-some'] && toForward % DROP_SOME_EVERY === 0 ? newestReceiver(client) : null;
    for (const other of clients) {
      if (other === client || other === skipped) continue;
      deliver(other, data, kind);
    }
    if (defect.echo) deliver(client, data, kind);
  }

  /** Sends the frame `reorder` held back for `client`, if any. */
  function flushHeld(client) {
    const held = client.held;
    if (!held) return;
    client.held = null;
    clearTimeout(held.timer);
    forward(client, held.data, held.isBinary);
  }

  function admit(ws, req) {
    const client = { id: nextId++, ws, remote: `${req.socket.remoteAddress}:${req.socket.remotePort}`,
      framesIn: 0, framesOut: 0, dropped: 0, maxBufferedAmount: 0, sent: 0, held: null };
    counters.connections += 1;
    // KSP-11.4: the first frame a client gets; sent before any other connection can forward to it.
    if (!defect['no-server-info']) {
      ws.send(JSON.stringify({ type: 'server_info', name: RELAY_NAME, version: RELAY_VERSION, clients: clients.length + 1 }));
    }
    clients = [...clients, client];
    counters.open = clients.length;

    ws.on('message', (data, isBinary) => {
      counters.framesIn += 1;
      client.framesIn += 1;
      // KSP-11.3: the text frame "ping", exactly, is answered to its sender and goes no further.
      if (!isBinary && data.length === 4 && data[0] === 0x70 && data[1] === 0x69 && data[2] === 0x6e && data[3] === 0x67) {
        counters.pings += 1;
        if (defect['pong-to-all']) {
          for (const c of clients) if (c.ws.readyState === OPEN) c.ws.send(PONG);
        } else {
          ws.send(PONG);
        }
        if (!defect['forward-ping']) return;
      }
      if (defect.reorder) {
        client.sent += 1;
        if (client.sent % REORDER_EVERY === 0) { // held until the sender's next frame goes out
          flushHeld(client);
          const timer = setTimeout(() => flushHeld(client), REORDER_FLUSH_MS);
          timer.unref?.();
          client.held = { data, isBinary, timer };
          return;
        }
        forward(client, data, isBinary);
        flushHeld(client);
        return;
      }
      forward(client, data, isBinary);
    });
    ws.on('error', (e) => {
      counters.errors += 1;
      if (e?.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') counters.oversized += 1; // ws closes it with 1009
    });
    ws.on('close', () => {
      clients = clients.filter((c) => c !== client);
      counters.open = clients.length;
      flushHeld(client);
    });
  }

  const server = http.createServer((req, res) => {
    res.writeHead(426, { 'Content-Type': 'text/plain; charset=utf-8', Connection: 'close', Upgrade: 'websocket' });
    res.end(`${RELAY_NAME}: a WebSocket relay (KSP/1 §11); connect with ws:// on path /\n`);
  });
  server.on('clientError', (e, socket) => { if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\n\r\n'); });
  server.on('upgrade', (req, socket, head) => {
    socket.on('error', () => { counters.errors += 1; });
    if (closing) return refuse(socket, 503, 'Service Unavailable');
    let url;
    try {
      url = new URL(req.url ?? '/', 'ws://relay');
    } catch {
      return refuse(socket, 400, 'Bad Request');
    }
    if (url.pathname !== '/') return refuse(socket, 404, 'Not Found');
    if (tokenDigest !== null && !defect['no-auth'] && !authorized(req, url)) { // KSP-11.5: before the upgrade
      counters.refused += 1;
      return refuse(socket, 401, 'Unauthorized', { 'WWW-Authenticate': 'Bearer realm="kensho-relay"' });
    }
    wss.handleUpgrade(req, socket, head, (ws) => admit(ws, req));
  });

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(requestedPort, host.replace(/^\[|\]$/g, ''), () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = server.address().port;
  const url = `ws://${hostForUrl(host)}:${port}/`;

  function close() {
    if (closing) return closing;
    closing = new Promise((resolve) => {
      server.close(() => resolve());
      const all = clients;
      for (const c of all) {
        if (c.held) { clearTimeout(c.held.timer); c.held = null; }
        c.ws.close(1001, 'relay closing');
      }
      const deadline = setTimeout(() => { for (const c of all) c.ws.terminate(); }, CLOSE_GRACE_MS);
      Promise.all(all.map((c) => (c.ws.readyState === 3 ? null : new Promise((done) => c.ws.once('close', done)))))
        .then(() => clearTimeout(deadline));
      wss.close();
      server.closeAllConnections?.();
    });
    return closing;
  }

  return {
    url,
    host,
    port,
    /** The defects switched on (RELAY_DEFECTS names), in the order given. */
    defects: defectList,
    /** Counters (`connections` admitted in all, `open` now, frames in/out, `dropped`, `refused`, ...) and each open connection's. */
    stats() {
      return { ...counters, clients: clients.map((c) => ({ id: c.id, remote: c.remote, framesIn: c.framesIn,
        framesOut: c.framesOut, dropped: c.dropped, bufferedAmount: c.ws.bufferedAmount,
        maxBufferedAmount: c.maxBufferedAmount })) };
    },
    /** Counters only (what the command prints on exit). */
    counters() { return { ...counters }; },
    close,
  };
}

// The command ------------------------------------------------------------------------------------

const USAGE = 'usage: node Adapters/node/relay.mjs --listen HOST:PORT [--token T] [--max-frame-bytes N] [--max-buffered-bytes N]'
  + ' [--defect NAME]... [--list-defects]';

class UsageError extends Error {}

function parseListen(value, what) {
  // HOST:PORT, or [IPV6]:PORT
  const match = /^\[([^\]]+)\]:([^:]*)$/.exec(value) ?? /^([^:[\]]+):([^:]*)$/.exec(value);
  if (!match) {
    throw new UsageError(`${what} expects HOST:PORT (e.g. 127.0.0.1:8080, or [::1]:8080; PORT 0 for any free port), got ${JSON.stringify(value)}`);
  }
  if (!/^\d{1,5}$/.test(match[2]) || Number(match[2]) > 65535) {
    throw new UsageError(`${what} expects a PORT from 0 to 65535 after the host, got ${JSON.stringify(match[2])}`);
  }
  return { host: match[1], port: Number(match[2]) };
}

function parsePositive(value, what) {
  if (value === undefined || !/^\d+$/.test(value) || Number(value) < 1 || !Number.isSafeInteger(Number(value))) {
    throw new UsageError(`${what} expects a positive whole number of bytes, got ${JSON.stringify(value ?? '')}`);
  }
  return Number(value);
}

/**
 * The options of the command line and the environment (KENSHO_RELAY_PORT, KENSHO_RELAY_TOKEN,
 * KENSHO_RELAY_DEFECTS: comma-separated defect names, used when no --defect is given).
 */
export function parseArguments(argv, env = process.env) {
  const options = {};
  const defects = [];
  for (let i = 0; i < argv.length; i += 1) {
    let arg = argv[i];
    let value;
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    if (eq > 0) { value = arg.slice(eq + 1); arg = arg.slice(0, eq); }
    const take = () => {
      if (value !== undefined) return value;
      if (i + 1 >= argv.length) throw new UsageError(`${arg} expects a value`);
      return argv[++i];
    };
    switch (arg) {
      case '--listen': Object.assign(options, parseListen(take(), '--listen')); options.listenGiven = true; break;
      case '--token': {
        const t = take();
        if (t === '') throw new UsageError('--token expects a non-empty token');
        options.token = t;
        break;
      }
      case '--max-frame-bytes': options.maxFrameBytes = parsePositive(take(), '--max-frame-bytes'); break;
      case '--max-buffered-bytes': options.maxBufferedBytes = parsePositive(take(), '--max-buffered-bytes'); break;
      case '--defect': defects.push(take()); break;
      case '--list-defects': options.listDefects = true; break;
      case '--help': case '-h': options.help = true; break;
      default: throw new UsageError(`unknown argument ${JSON.stringify(argv[i])}`);
    }
  }
  if (!options.listenGiven && env.KENSHO_RELAY_PORT !== undefined && env.KENSHO_RELAY_PORT !== '') {
    const port = env.KENSHO_RELAY_PORT;
    if (!/^\d+$/.test(port) || Number(port) > 65535) {
      throw new UsageError(`KENSHO_RELAY_PORT expects a PORT from 0 to 65535, got ${JSON.stringify(port)}`);
    }
    Object.assign(options, { host: '127.0.0.1', port: Number(port) });
  }
  if (options.token === undefined && env.KENSHO_RELAY_TOKEN) options.token = env.KENSHO_RELAY_TOKEN;
  const named = defects.length > 0 ? defects
    : String(env.KENSHO_RELAY_DEFECTS ?? '').split(',').map((d) => d.trim()).filter((d) => d !== '');
  if (named.length > 0) {
    try {
      options.defects = checkDefects(named);
    } catch (e) {
      throw new UsageError(`${defects.length > 0 ? '--defect' : 'KENSHO_RELAY_DEFECTS'}: ${e.message}`);
    }
  }
  delete options.listenGiven;
  return options;
}

async function main() {
  let options;
  try {
    options = parseArguments(process.argv.slice(2));
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`relay: ${e.message}\n${USAGE}\n`);
    process.exit(2);
  }
  if (options.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (options.listDefects) { // NAME<TAB>text, one a line, as the adapter's --list-defects
    for (const [name, text] of Object.entries(RELAY_DEFECTS)) process.stdout.write(`${name}\t${text}\n`);
    return;
  }
  let relay;
  try {
    relay = await startRelay(options);
  } catch (e) {
    process.stderr.write(`relay: ${e.code === 'WS_MISSING' ? '' : 'cannot listen: '}${e.message}\n`);
    process.exit(1);
  }
  let stopping = false;
  const stop = (signal) => {
    if (stopping) {
      process.stderr.write(`${JSON.stringify(relay.counters())}\n`);
      process.exit(0);
    }
    stopping = true;
    relay.close().then(() => {
      process.stderr.write(`${JSON.stringify(relay.counters())}\n`);
      process.exit(0);
    });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  if (relay.defects.length > 0) process.stderr.write(`relay: deliberate defects on: ${relay.defects.join(', ')}\n`);
  process.stdout.write(`listening ${relay.url}\n`);
}

const isMain = (() => {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
})();
if (isMain) await main();
