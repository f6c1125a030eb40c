#!/usr/bin/env node
// The kensho-bench adapter for the JavaScript KSP/1 bus: speaks kensho-adapter/1
// (docs/ADAPTER-PROTOCOL.md) on stdin/stdout, one JSON object per line.
//
//   kensho-bench Scenarios/ --impl "node Adapters/node/adapter.mjs"
//   kensho-bench Scenarios/ --impl "node Adapters/node/adapter.mjs --defect chunks-reordered"
//
// --defect NAME switches on a catalogued defect (see DEFECTS in kensho-bus.mjs); --misbehave
// MODE makes the adapter itself misbehave (crash, hang, garbage, huge, wrong-version, unlabelled:
// relay connections without their worker's name, no-reconnect: a relay connection once lost stays
// lost), for the harness's own tests.
//
// With `configure.time` "real" (the `real_time` capability), the buses run on the system clock
// and the harness pipelines operations.
//
// With the `relay` capability (when the `ws` library is installed: Debian's node-ws), a
// `configure` carrying `relay: {url, token?}` puts every worker's bus on a WebSocket connection
// to that relay (ws-transport.mjs), on the system clock, instead of `send` events.
import { createInterface } from 'node:readline';
import v8 from 'node:v8';
import vm from 'node:vm';
import { MessageBus, ManualClock, EmitterError, DEFECTS, systemClock } from './kensho-bus.mjs';
import { WsTransport } from './ws-transport.mjs';
import { wsAvailable } from './ws-lib.mjs';

// The `memory` capability: the heap in use after a full collection. `gc` needs --expose-gc;
// set at run time, it is reachable through a fresh context. Without it, no capability (the
// harness then reads the process's resident size).
let collect = globalThis.gc ?? null;
if (!collect) {
  try {
    v8.setFlagsFromString('--expose-gc');
    collect = vm.runInNewContext('gc');
  } catch {
    collect = null;
  }
}

const args = process.argv.slice(2);
const defects = [];
const without = new Set();
let misbehave = null;
for (let i = 0; i < args.length; i += 1) {
  if (args[i] === '--defect') defects.push(args[++i]);
  else if (args[i] === '--misbehave') misbehave = args[++i];
  else if (args[i] === '--without-capability') without.add(args[++i]);
  else if (args[i] === '--list-defects') {
    for (const [name, text] of Object.entries(DEFECTS)) process.stdout.write(`${name}\t${text}\n`);
    process.exit(0);
  } else {
    process.stderr.write(`unknown argument ${args[i]}\n`);
    process.exit(2);
  }
}
for (const d of defects) {
  if (!(d in DEFECTS)) {
    process.stderr.write(`unknown defect ${d}; known: ${Object.keys(DEFECTS).join(', ')}\n`);
    process.exit(2);
  }
}

const clock = new ManualClock();
const buses = new Map(); // worker → MessageBus
const transports = new Map(); // worker → WsTransport, in relay mode
const emitters = new Map(); // streamId → emitter (producer side), while it is active
const RELAY_CONNECT_DEADLINE_MS = 10000;
let out = [];
let inOperation = false; // events of an operation go out with (before) its ack
let flushScheduled = false;
// In real time and in relay mode, timers fire and messages arrive at any time: the events they
// cause (send, handler, chunk, end, error, credit) go out as soon as they are handled, outside
// any operation.
const emit = (event) => {
  out.push(JSON.stringify(event));
  if (!inOperation && !flushScheduled) {
    flushScheduled = true;
    setImmediate(() => { flushScheduled = false; if (!inOperation) flush(); });
  }
};
const flush = () => {
  if (out.length > 0) process.stdout.write(out.join('\n') + '\n');
  out = [];
};

function busFor(worker) {
  const bus = buses.get(worker);
  if (!bus) throw new Error(`no worker ${worker} here`);
  return bus;
}

let config = { streamTimeoutMs: 300000, sweepIntervalMs: 60000, creditWindow: null };

const ops = {
  hello(op) {
    if (misbehave === 'wrong-version') return { protocol: 'kensho-adapter/0' };
    return {
      protocol: 'kensho-adapter/1',
      implementation: { name: 'kensho-js', version: '0.1.0', language: 'javascript', defects },
      capabilities: ['virtual_time', 'real_time', 'stats', 'cancel', 'seq', 'peer_down', 'flow_control',
        ...(collect ? ['memory'] : []), ...(wsAvailable() ? ['relay'] : [])]
        .filter((c) => !without.has(c)),
    };
  },
  configure(op) {
    config = { ...config, ...op };
    if (op.relay !== undefined && op.relay !== null) return configureRelay(op);
    if (op.time !== undefined && op.time !== 'virtual' && op.time !== 'real') {
      throw new Error(`configure.time must be "virtual" or "real", not ${JSON.stringify(op.time)}`);
    }
    // Real time: the system clock; events go out as they happen (see emit).
    const busClock = op.time === 'real' ? systemClock : clock;
    for (const worker of op.workers ?? []) {
      const transport = { send: (message) => emit({ event: 'send', worker, message }), close() {} };
      buses.set(worker, new MessageBus({ name: worker, transport, clock: busClock, streamTimeoutMs: config.streamTimeoutMs,
        sweepIntervalMs: config.sweepIntervalMs, creditWindow: null, defects }));
    }
    return {};
  },
  register(op) {
    const worker = op.worker;
    busFor(worker).registerStreamMethod(op.method, (args, stream) => {
      emitters.set(stream.streamId, stream);
      stream.onCancel(() => emitters.delete(stream.streamId)); // nothing kept once it stops
      emit({ event: 'handler', worker, method: op.method, streamId: stream.streamId, args });
      if (op.throws) {
        const e = new Error(op.throws.message);
        e.name = op.throws.name;
        if (op.throws.code !== undefined) e.code = op.throws.code;
        throw e;
      }
    });
    return {};
  },
  call(op) {
    const worker = op.worker;
    const throwIn = new Set(op.throwIn ?? []);
    let streamId = null;
    const report = (kind, event) => {
      emit({ event: kind, worker, streamId, ...event });
    };
    const callbacks = {
      onChunk: (data) => { report('chunk', { data }); if (throwIn.has('onChunk')) throw new Error('thrown by onChunk'); },
      onEnd: (summary) => { report('end', { summary }); if (throwIn.has('onEnd')) throw new Error('thrown by onEnd'); },
      onError: (error) => { report('error', { error }); if (throwIn.has('onError')) throw new Error('thrown by onError'); },
    };
    if (op.timeoutMs !== undefined) callbacks.timeout = op.timeoutMs;
    if (op.creditWindow !== undefined) callbacks.creditWindow = op.creditWindow;
    if (op.traceId !== undefined) callbacks.traceId = op.traceId;
    streamId = busFor(worker).callAgentStream(op.target, op.method, op.args ?? null, callbacks);
    if (misbehave === 'hang') for (;;) { /* never answers */ }
    return { streamId };
  },
  cancel(op) { return { result: busFor(op.worker).cancelStream(op.streamId, op.reason ?? null) }; },
  chunk(op) { return emitterOp(op, (e) => e.chunk(op.data ?? null)); },
  chunks(op) {
    let sent = 0;
    const ack = emitterOp(op, (e) => { for (const data of op.data ?? []) { e.chunk(data); sent += 1; } });
    return { ...ack, sent };
  },
  end(op) { return emitterOp(op, (e) => e.end(op.summary ?? null)); },
  error(op) {
    return emitterOp(op, (e) => {
      const error = new Error(op.error?.message ?? '');
      error.name = op.error?.name ?? 'Error';
      if (op.error?.code !== undefined) error.code = op.error.code;
      e.error(error);
    });
  },
  deliver(op) {
    if (misbehave === 'crash') process.exit(3);
    if (misbehave === 'garbage') emit('this is not JSON');
    if (misbehave === 'huge') out.push('"' + 'x'.repeat(70 * 1024 * 1024) + '"');
    const bus = busFor(op.worker);
    for (const message of op.messages ?? [op.message]) bus.receive(message);
    return {};
  },
  peer_down(op) { busFor(op.worker).peerDown(op.peer); return {}; },
  advance(op) { clock.advanceTo(op.toMs); return {}; },
  stats(op) { return { stats: busFor(op.worker).stats() }; },
  memory() {
    if (!collect) throw new Error('no gc: the memory capability is off');
    // Two passes: the first may leave objects whose finalizers the second collects.
    collect();
    collect();
    const usage = process.memoryUsage();
    return { memory: { heapUsedBytes: usage.heapUsed, residentBytes: usage.rss } };
  },
  heap_snapshot(op) {
    if (typeof op.path !== 'string') throw new Error('heap_snapshot needs a path');
    return { path: v8.writeHeapSnapshot(op.path) };
  },
  dispose(op) {
    const bus = busFor(op.worker);
    bus.dispose();
    for (const [streamId, emitter] of [...emitters]) if (emitter.bus === bus) emitters.delete(streamId);
    return {};
  },
  shutdown() { return {}; },
};

/**
 * Relay mode (the `relay` capability): each worker's bus on its own connection to the relay, on
 * the system clock; no `send` events. Acknowledged once every connection is open (and the
 * relay's server_info seen), or with an error naming the relay past the deadline.
 */
async function configureRelay(op) {
  const relay = op.relay;
  if (typeof relay !== 'object' || Array.isArray(relay) || typeof relay.url !== 'string' || !/^wss?:\/\//.test(relay.url)) {
    throw new Error('configure.relay must be {"url": "ws://HOST:PORT/", "token"?: "..."}');
  }
  if (relay.token !== undefined && relay.token !== null && typeof relay.token !== 'string') {
    throw new Error('configure.relay.token must be a string');
  }
  if (without.has('relay') || !wsAvailable()) throw new Error('no relay capability here: the ws library is missing (Debian package node-ws)');
  const deadlineMs = Number.isFinite(relay.connectTimeoutMs) && relay.connectTimeoutMs > 0 ? relay.connectTimeoutMs
    : RELAY_CONNECT_DEADLINE_MS;
  const log = (line) => process.stderr.write(`${line}\n`);
  const started = [];
  for (const worker of op.workers ?? []) {
    transports.get(worker)?.close();
    // Each connection carries its worker's name (`?worker=`): the harness knows deliveries by it.
    const label = misbehave === 'unlabelled' ? undefined : worker;
    const transport = new WsTransport({ url: relay.url, token: relay.token ?? undefined, label,
      reconnect: misbehave !== 'no-reconnect', log: (line) => log(`[${worker}] ${line}`) });
    const bus = new MessageBus({ name: worker, transport, clock: systemClock, streamTimeoutMs: config.streamTimeoutMs,
      sweepIntervalMs: config.sweepIntervalMs, creditWindow: null, defects });
    transport.attach(bus);
    buses.set(worker, bus);
    transports.set(worker, transport);
    started.push([worker, transport]);
  }
  let timer;
  const deadline = new Promise((resolve) => { timer = setTimeout(resolve, deadlineMs); });
  const all = Promise.all(started.map(([, t]) => t.ready));
  await Promise.race([all, deadline]);
  clearTimeout(timer);
  const waiting = started.filter(([, t]) => !t.readySettled);
  if (waiting.length > 0) {
    const reason = waiting[0][1].lastError;
    // No half-configured process: these workers are gone, and nothing keeps retrying.
    for (const [worker, transport] of started) {
      transport.close();
      transports.delete(worker);
      buses.delete(worker);
    }
    throw new Error(`relay ${relay.url} not connected within ${deadlineMs} ms for ${waiting.map(([w]) => w).join(', ')}`
      + (reason ? ` (${reason})` : ''));
  }
  await all; // a transport closed meanwhile rejects here
  return {};
}

function emitterOp(op, action) {
  const emitter = emitters.get(op.streamId);
  if (!emitter) return { result: 'closed' };
  try {
    action(emitter);
    return { result: 'ok' };
  } catch (e) {
    if (!(e instanceof EmitterError)) throw e;
    if (e.kind === 'no_credit') {
      // Runs when credit comes, or when the stream stops (the harness then finds it refused).
      emitter.onCredit(() => emit({ event: 'credit', worker: op.worker, streamId: op.streamId }));
    }
    return { result: e.kind };
  } finally {
    if (!emitter.isActive) emitters.delete(op.streamId);
  }
}

function acknowledge(op, result) {
  const ack = { event: 'ack', id: op.id, ...result };
  // Relay mode runs on the system clock: the manual clock then holds no timer (null).
  ack.nextTimerMs = clock.nextDeadline();
  inOperation = true;
  emit(ack);
  inOperation = false;
  flush();
  if (op.op === 'shutdown') process.exit(0);
}

function failed(op, e) {
  process.stderr.write(`${op.op} failed: ${e?.stack ?? e}\n`);
  return { error: String(e?.message ?? e) };
}

/** Handles one line; returns a promise while an operation (relay configure) completes later. */
function handleLine(line) {
  if (line.trim() === '') return undefined;
  let op;
  try {
    op = JSON.parse(line);
  } catch (e) {
    process.stderr.write(`not JSON: ${line.slice(0, 80)}\n`);
    return undefined;
  }
  const handler = ops[op.op];
  let result;
  inOperation = true;
  try {
    if (!handler) throw new Error(`unknown op ${op.op}`);
    result = handler(op);
  } catch (e) {
    result = failed(op, e);
  } finally {
    inOperation = false;
  }
  if (result && typeof result.then === 'function') {
    return result.then((r) => acknowledge(op, r), (e) => acknowledge(op, failed(op, e)));
  }
  acknowledge(op, result);
  return undefined;
}

// Operations run one at a time, in order: lines that come while one completes wait for it.
const waitingLines = [];
let busy = null;
function pump() {
  while (!busy && waitingLines.length > 0) {
    const pending = handleLine(waitingLines.shift());
    if (pending) busy = pending.then(() => { busy = null; pump(); });
  }
}
const input = createInterface({ input: process.stdin, crlfDelay: Infinity });
input.on('line', (line) => { waitingLines.push(line); pump(); });
// At the end of input, what was read still runs; then the process exits.
const exitWhenIdle = () => (busy ? busy.then(exitWhenIdle) : process.exit(0));
input.on('close', exitWhenIdle);
