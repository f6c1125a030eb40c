#!/usr/bin/env node
// The kensho-bench adapter for the JavaScript KSP/1 bus: speaks kensho-adapter/1
// (docs/ADAPTER-PROTOCOL.md) on stdin/stdout, one JSON object per line.
//
//   kensho-bench Scenarios/ --impl "node Adapters/node/adapter.mjs"
//   kensho-bench Scenarios/ --impl "node Adapters/node/adapter.mjs --defect chunks-reordered"
//
// --defect NAME switches on a catalogued defect (see DEFECTS in kensho-bus.mjs); --misbehave
// MODE makes the adapter itself misbehave (crash, hang, garbage, huge, wrong-version), for the
// harness's own tests.
import { createInterface } from 'node:readline';
import v8 from 'node:v8';
import vm from 'node:vm';
import { MessageBus, ManualClock, EmitterError, DEFECTS } from './kensho-bus.mjs';

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
const emitters = new Map(); // streamId → emitter (producer side), while it is active
let out = [];
const emit = (event) => out.push(JSON.stringify(event));
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
      capabilities: ['virtual_time', 'stats', 'cancel', 'seq', 'peer_down', 'flow_control',
        ...(collect ? ['memory'] : [])]
        .filter((c) => !without.has(c)),
    };
  },
  configure(op) {
    config = { ...config, ...op };
    for (const worker of op.workers ?? []) {
      const transport = { send: (message) => emit({ event: 'send', worker, message }), close() {} };
      buses.set(worker, new MessageBus({ name: worker, transport, clock, streamTimeoutMs: config.streamTimeoutMs,
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

const input = createInterface({ input: process.stdin, crlfDelay: Infinity });
input.on('line', (line) => {
  if (line.trim() === '') return;
  let op;
  try {
    op = JSON.parse(line);
  } catch (e) {
    process.stderr.write(`not JSON: ${line.slice(0, 80)}\n`);
    return;
  }
  const handler = ops[op.op];
  let ack;
  try {
    if (!handler) throw new Error(`unknown op ${op.op}`);
    ack = { event: 'ack', id: op.id, ...handler(op) };
  } catch (e) {
    process.stderr.write(`${op.op} failed: ${e.stack ?? e}\n`);
    ack = { event: 'ack', id: op.id, error: String(e.message ?? e) };
  }
  ack.nextTimerMs = clock.nextDeadline();
  emit(ack);
  flush();
  if (op.op === 'shutdown') process.exit(0);
});
input.on('close', () => process.exit(0));
