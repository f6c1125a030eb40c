#!/usr/bin/env node
// A KSP/1 relay (../shared/PROTOCOL.md §11, KSP-11.1 to 11.6) on the `ws` library: a WebSocket
// server on path `/` that forwards every frame it receives, unchanged and of the same kind, to
// every other admitted connection, in the order received. It never parses what it forwards.
//
//   node Adapters/node/relay.mjs --listen 127.0.0.1:8080 [--token T] [--max-frame-bytes N]
//                                [--max-buffered-bytes N]
//
// As a module: `startRelay({host, port, token, maxFrameBytes, maxBufferedBytes})` resolves to
// `{url, host, port, stats(), close()}`.
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

  function admit(ws, req) {
    const client = { id: nextId++, ws, remote: `${req.socket.remoteAddress}:${req.socket.remotePort}`,
      framesIn: 0, framesOut: 0, dropped: 0, maxBufferedAmount: 0 };
    counters.connections += 1;
    // KSP-11.4: the first frame a client gets; sent before any other connection can forward to it.
    ws.send(JSON.stringify({ type: 'server_info', name: RELAY_NAME, version: RELAY_VERSION, clients: clients.length + 1 }));
    clients = [...clients, client];
    counters.open = clients.length;

    ws.on('message', (data, isBinary) => {
      counters.framesIn += 1;
      client.framesIn += 1;
      // KSP-11.3: the text frame "ping", exactly, is answered to its sender and goes no further.
      if (!isBinary && data.length === 4 && data[0] === 0x70 && data[1] === 0x69 && data[2] === 0x6e && data[3] === 0x67) {
        counters.pings += 1;
        ws.send(PONG);
        return;
      }
      const kind = isBinary ? BINARY : TEXT;
      const size = data.length;
      for (const other of clients) { // KSP-11.1: every other open connection, never the sender
        if (other === client) continue;
        const peer = other.ws;
        if (peer.readyState !== OPEN) continue;
        const waiting = peer.bufferedAmount;
        if (waiting > 0 && waiting + size > maxBufferedBytes) { // KSP-11.6: drop for it, count, go on
          other.dropped += 1;
          counters.dropped += 1;
          continue;
        }
        if (peer._socket) cork(peer._socket);
        peer.send(data, kind); // the received buffer, as it came (KSP-11.1, 11.2)
        other.framesOut += 1;
        counters.framesOut += 1;
        const after = peer.bufferedAmount;
        if (after > other.maxBufferedAmount) other.maxBufferedAmount = after;
      }
    });
    ws.on('error', (e) => {
      counters.errors += 1;
      if (e?.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') counters.oversized += 1; // ws closes it with 1009
    });
    ws.on('close', () => {
      clients = clients.filter((c) => c !== client);
      counters.open = clients.length;
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
    if (tokenDigest !== null && !authorized(req, url)) { // KSP-11.5: before the upgrade
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
      for (const c of all) c.ws.close(1001, 'relay closing');
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

const USAGE = 'usage: node Adapters/node/relay.mjs --listen HOST:PORT [--token T] [--max-frame-bytes N] [--max-buffered-bytes N]';

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

/** The options of the command line and the environment (KENSHO_RELAY_PORT, KENSHO_RELAY_TOKEN). */
export function parseArguments(argv, env = process.env) {
  const options = {};
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
