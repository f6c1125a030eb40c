#!/usr/bin/env node
// A quick throughput figure for a KSP/1 relay: N clients each send text frames of about B bytes
// as fast as their connection takes them, for S seconds; every frame fans out to the N−1 others.
//
//   node Adapters/node/bench-relay.mjs [--clients 10] [--seconds 5] [--bytes 200] [--url ws://HOST:PORT/]
//
// Without --url it starts `node relay.mjs --listen 127.0.0.1:0` as a process of its own (the
// clients run in this one) and reads its counters when it exits; with --url it measures the
// relay there (any KSP-11 relay) from the clients' side only. Prints one JSON line.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { loadWs } from './ws-lib.mjs';

const options = { clients: 10, seconds: 5, bytes: 200, url: null };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 1) {
  const name = argv[i].replace(/^--/, '');
  if (!(name in options) || i + 1 >= argv.length) {
    process.stderr.write('usage: node Adapters/node/bench-relay.mjs [--clients N] [--seconds S] [--bytes B] [--url ws://HOST:PORT/]\n');
    process.exit(2);
  }
  options[name] = name === 'url' ? argv[++i] : Number(argv[++i]);
}

let WebSocket;
try {
  ({ WebSocket } = loadWs());
} catch (e) {
  process.stderr.write(`bench-relay: ${e.message}\n`);
  process.exit(1);
}
const HIGH_WATER = 256 * 1024; // a sender waits while this much is queued on its connection
const BATCH = 32; // frames a sender writes per turn of the event loop

async function startOwnRelay() {
  const script = fileURLToPath(new URL('./relay.mjs', import.meta.url));
  const child = spawn(process.execPath, [script, '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const url = await new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      stdout += d;
      const m = /^listening (\S+)\n/.exec(stdout);
      if (m) resolve(m[1]);
    });
    child.on('exit', (code) => reject(new Error(`relay exited with ${code}: ${stderr}`)));
  });
  const stop = () => new Promise((resolve) => {
    child.on('close', () => resolve(JSON.parse(stderr.trim().split('\n').at(-1))));
    child.kill('SIGTERM');
  });
  return { url, stop };
}

const connect = (url) => new Promise((resolve, reject) => {
  const ws = new WebSocket(url, { perMessageDeflate: false, skipUTF8Validation: true }); // lighter clients
  const client = { ws, received: 0, sent: 0 };
  ws.on('message', () => { client.received += 1; });
  ws.on('open', () => resolve(client));
  ws.on('error', reject);
});

const own = options.url ? null : await startOwnRelay();
const url = options.url ?? own.url;
const clients = [];
for (let i = 0; i < options.clients; i += 1) clients.push(await connect(url));
await new Promise((resolve) => { setTimeout(resolve, 100); }); // server_info frames in
for (const c of clients) c.received = 0;

// A KenshoMessage-like JSON text of about `bytes` bytes.
const frame = (i, n) => {
  const head = `{"messageId":"c${i}-${n}","sourceWorker":"w${i}","targetWorker":"*","type":"broadcast","payload":"`;
  return `${head}${'x'.repeat(Math.max(0, options.bytes - head.length - 2))}"}`;
};

let running = true;
const started = performance.now();
for (const [i, c] of clients.entries()) {
  const pump = () => {
    if (!running) return;
    for (let k = 0; k < BATCH && c.ws.bufferedAmount < HIGH_WATER; k += 1) {
      c.ws.send(frame(i, c.sent));
      c.sent += 1;
    }
    setImmediate(pump);
  };
  pump();
}
await new Promise((resolve) => { setTimeout(resolve, options.seconds * 1000); });
running = false;
const window = (performance.now() - started) / 1000;
const receivedInWindow = clients.reduce((sum, c) => sum + c.received, 0);
// Let what is in flight arrive: until nothing comes for 300 ms.
let last = -1;
for (;;) {
  const now = clients.reduce((sum, c) => sum + c.received, 0);
  if (now === last) break;
  last = now;
  await new Promise((resolve) => { setTimeout(resolve, 300); });
}
const drained = (performance.now() - started) / 1000 - 0.3;
const sent = clients.reduce((sum, c) => sum + c.sent, 0);
for (const c of clients) c.ws.terminate();
const relay = own ? await own.stop() : null;

const round = (x) => Math.round(x);
const result = {
  relay: own ? 'kensho-js-relay (node relay.mjs, its own process)' : url,
  clients: options.clients, seconds: options.seconds, frameBytes: frame(0, 0).length,
  sentFrames: sent,
  receivedFrames: last,
  receivedPerSecondInWindow: round(receivedInWindow / window),
  receivedPerSecondUntilDrained: round(last / drained),
  ...(relay ? {
    relayFramesIn: relay.framesIn,
    relayFramesOut: relay.framesOut,
    relayDropped: relay.dropped,
    relayForwardedPerSecond: round(relay.framesOut / drained),
  } : {}),
  forwardedMBPerSecond: Number(((last * frame(0, 0).length) / drained / 1e6).toFixed(1)),
};
process.stdout.write(`${JSON.stringify(result)}\n`);
