// Tests of the JavaScript KSP/1 bus, named by the rule each concerns. Run them with
//
//   node --test Adapters/node/test/
//
// Buses talk over an in-memory FIFO network (each message goes through JSON, as on a wire),
// on one ManualClock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { MessageBus, ManualClock, EmitterError, ErrorCode } from '../kensho-bus.mjs';

/** A FIFO network: delivery in send order, never re-entrant; `tap` may drop or hold a message. */
class Network {
  constructor({ cap = Infinity } = {}) {
    this.buses = new Map(); this.queue = []; this.delivering = false; this.log = []; this.tap = null; this.cap = cap;
  }
  transport(name) {
    return { send: (m) => this.send(JSON.parse(JSON.stringify(m))), close: () => this.buses.delete(name) };
  }
  bus(name, options = {}) {
    const bus = new MessageBus({ name, transport: this.transport(name), clock: this.clock, ...options });
    this.buses.set(name, bus);
    return bus;
  }
  send(m) {
    this.log.push(m);
    if (this.log.length > this.cap) return; // a livelock ends in a failed test, not a hang
    if (this.tap && this.tap(m) === 'drop') return;
    this.queue.push(m);
    if (this.delivering) return;
    this.delivering = true;
    try {
      while (this.queue.length > 0) this.route(this.queue.shift());
    } finally {
      this.delivering = false;
    }
  }
  /** Hands `m` to its target now, bypassing the tap and the queue. */
  route(m) { this.buses.get(m.targetWorker)?.receive(JSON.parse(JSON.stringify(m))); }
  sent(filter) { return this.log.filter(filter); }
}

function setup(options = {}, networkOptions = {}) {
  const clock = new ManualClock();
  const net = new Network(networkOptions);
  net.clock = clock;
  const events = [];
  const callbacks = (extra = {}) => ({
    onChunk: (d) => events.push(['chunk', d]),
    onEnd: (s) => events.push(['end', s]),
    onError: (e) => events.push(['error', e.code]),
    ...extra,
  });
  const chunks = () => events.filter((e) => e[0] === 'chunk').map((e) => e[1]);
  const errors = () => events.filter((e) => e[0] === 'error').map((e) => e[1]);
  return { clock, net, events, callbacks, chunks, errors, options };
}

/** A producer that emits 0..count-1 as credit allows, waiting on onCredit, then ends. */
function pump(stream, count, from = 0) {
  for (let i = from; i < count; i += 1) {
    try {
      stream.chunk(i);
    } catch (e) {
      if (!(e instanceof EmitterError) || e.kind !== 'no_credit') return;
      stream.onCredit(() => pump(stream, count, i));
      return;
    }
  }
  try { stream.end('done'); } catch { /* stopped meanwhile */ }
}

const isCreditFrame = (m) => m.type === 'stream_chunk' && m.metadata?.creditLimit !== undefined;
const range = (n) => Array.from({ length: n }, (_, i) => i);

// Item 1 --------------------------------------------------------------------------------------

test('KSP-3.2: a worker streaming 10 000 chunks from itself with a credit window of 1 gets each once, in order', () => {
  const t = setup({}, { cap: 30_000 });
  const solo = t.net.bus('solo');
  solo.registerStreamMethod('count', (_, stream) => pump(stream, 10_000));
  solo.callAgentStream('solo', 'count', null, t.callbacks({ creditWindow: 1 }));
  const got = t.chunks();
  assert.equal(got.length, 10_000, 'no credit frame reached onChunk');
  assert.deepEqual(got, range(10_000));
  assert.deepEqual(t.events.at(-1), ['end', 'done']);
  assert.equal(solo.activeStreams.size + solo.emitters.size, 0);
  assert.ok(t.net.log.length <= 2 * 10_000 + 2, `${t.net.log.length} messages`);
});

test('KSP-3.3: a credit frame never refreshes a stream, even on a worker that consumes what it produces', () => {
  const t = setup();
  const solo = t.net.bus('solo', { streamTimeoutMs: 10_000, sweepIntervalMs: 1_000 });
  let emitter;
  solo.registerStreamMethod('hold', (_, stream) => { emitter = stream; });
  const id = solo.callAgentStream('solo', 'hold', null, t.callbacks({ creditWindow: 4 }));
  emitter.chunk(0);
  for (let k = 1; k <= 5; k += 1) {
    t.clock.advanceTo(k * 4_000);
    t.net.route({ messageId: `grant-${k}`, sourceWorker: 'solo', targetWorker: 'solo', type: 'stream_chunk',
      payload: null, streamId: id, metadata: { creditLimit: 4 + k } });
  }
  assert.deepEqual(t.chunks(), [0], 'a credit frame is never a chunk');
  assert.deepEqual(t.errors(), [ErrorCode.STREAM_TIMEOUT], 'idle since the chunk at 0 s');
});

// Item 2 --------------------------------------------------------------------------------------

for (const ending of ['consumer cancels', 'consumer gone', 'producer disposed', 'consumer times out', 'producer ends']) {
  test(`KSP-9.2: a producer waiting for credit is resumed and released when ${ending}`, () => {
    const t = setup();
    const consumer = t.net.bus('consumer');
    const producer = t.net.bus('producer');
    let emitter;
    producer.registerStreamMethod('hold', (_, stream) => { emitter = stream; });
    t.net.tap = (m) => (m.type === 'stream_chunk' && m.targetWorker === 'consumer' ? 'drop' : 'deliver');
    const id = consumer.callAgentStream('producer', 'hold', null, t.callbacks({ creditWindow: 2 }));
    emitter.chunk(0);
    emitter.chunk(1);
    assert.throws(() => emitter.chunk(2), (e) => e.kind === 'no_credit');
    let resumed = 0;
    emitter.onCredit(() => { resumed += 1; });
    assert.equal(resumed, 0);
    switch (ending) {
      case 'consumer cancels': consumer.cancelStream(id); break;
      case 'consumer gone': producer.peerDown('consumer'); break;
      case 'producer disposed': producer.dispose(); break;
      case 'consumer times out': t.clock.advanceTo(400_000); break;
      default: emitter.end();
    }
    assert.equal(resumed, 1, 'the waiting producer resumes once');
    assert.equal(emitter.onCreditHandler, null, 'nothing holds its continuation any more');
    assert.equal(emitter.onCancelHandler, null);
    assert.equal(emitter.isActive, false);
    assert.throws(() => emitter.chunk(2), EmitterError);
    assert.equal(producer.emitters.size, 0);
    let late = 0;
    emitter.onCredit(() => { late += 1; });
    assert.equal(late, 1, 'a handler registered after the end runs at once');
  });
}

// Item 3 --------------------------------------------------------------------------------------

test('KSP-1.4: credit frames, and the cancels and errors of dispose(), carry the stream\'s traceId', () => {
  const t = setup();
  const consumer = t.net.bus('consumer');
  const producer = t.net.bus('producer');
  producer.registerStreamMethod('count', (_, stream) => pump(stream, 6));
  consumer.callAgentStream('producer', 'count', null, t.callbacks({ creditWindow: 2, traceId: 'trace-7' }));
  const grants = t.net.sent(isCreditFrame);
  assert.ok(grants.length > 0);
  for (const m of grants) assert.equal(m.traceId, 'trace-7');

  producer.registerStreamMethod('hold', () => {});
  consumer.callAgentStream('producer', 'hold', null, t.callbacks({ traceId: 'trace-8' }));
  consumer.callAgentStream('producer', 'hold', null, t.callbacks({ traceId: 'trace-9' }));
  const before = t.net.log.length;
  producer.dispose(); // one stream_error per stream it produces
  t.net.buses.set('producer', producer); // (dispose let go of the transport; keep routing to it)
  const disposal = t.net.log.slice(before);
  assert.deepEqual(disposal.map((m) => [m.type, m.traceId]), [['stream_error', 'trace-8'], ['stream_error', 'trace-9']]);

  const other = t.net.bus('producer2');
  other.registerStreamMethod('hold', () => {});
  consumer.callAgentStream('producer2', 'hold', null, t.callbacks({ traceId: 'trace-10' }));
  const mark = t.net.log.length;
  consumer.dispose(); // one stream_cancel per stream it consumes
  assert.deepEqual(t.net.log.slice(mark).map((m) => [m.type, m.traceId]), [['stream_cancel', 'trace-10']]);
});

// Item 4 --------------------------------------------------------------------------------------

test('KSP-9.3: with a window of 1 and every credit frame duplicated and reordered, at most 1 chunk is in flight', () => {
  const t = setup();
  const consumer = t.net.bus('consumer');
  const producer = t.net.bus('producer');
  let emitter;
  producer.registerStreamMethod('count', (_, stream) => { emitter = stream; pump(stream, 200); });
  // A slow consumer: chunks wait in its inbox. Every credit frame is delivered, and again later.
  const inbox = [];
  let repeats = [];
  t.net.tap = (m) => {
    if (m.type !== 'stream_chunk') return 'deliver';
    if (m.targetWorker === 'consumer') { inbox.push(m); return 'drop'; }
    repeats.push(m);
    return 'deliver';
  };
  consumer.callAgentStream('producer', 'count', null, t.callbacks({ creditWindow: 1 }));
  let maxInFlight = 0;
  const measure = () => { maxInFlight = Math.max(maxInFlight, emitter.seq - t.chunks().length); };
  for (let steps = 0; inbox.length > 0 && steps < 10_000; steps += 1) {
    measure();
    t.net.route(inbox.shift());
    measure();
    const again = repeats;
    repeats = [];
    for (const m of again) t.net.route(m);
    measure();
  }
  assert.deepEqual(t.chunks(), range(200));
  assert.deepEqual(t.events.at(-1), ['end', 'done']);
  assert.ok(maxInFlight <= 1, `${maxInFlight} chunks in flight at once`);
});

test('KSP-FC: grants are cumulative ("chunks with a seq below N may be sent"): payload null, no seq', () => {
  const t = setup();
  const consumer = t.net.bus('consumer');
  const producer = t.net.bus('producer');
  producer.registerStreamMethod('count', (_, stream) => pump(stream, 5));
  consumer.callAgentStream('producer', 'count', null, t.callbacks({ creditWindow: 2 }));
  assert.deepEqual(t.chunks(), range(5));
  const grants = t.net.sent(isCreditFrame);
  assert.deepEqual(grants.map((m) => m.metadata.creditLimit), [3, 4, 5, 6, 7]);
  for (const m of grants) {
    assert.equal(m.payload, null);
    assert.equal(m.metadata.seq, undefined);
    assert.equal(m.metadata.credit, undefined);
    assert.deepEqual([m.sourceWorker, m.targetWorker], ['consumer', 'producer']);
  }
});

test('KSP-FC: a lost grant only delays: an idle stream repeats its standing grant at the next sweep', () => {
  const t = setup();
  const consumer = t.net.bus('consumer', { streamTimeoutMs: 10_000, sweepIntervalMs: 1_000 });
  const producer = t.net.bus('producer');
  producer.registerStreamMethod('count', (_, stream) => pump(stream, 10));
  let lost = 0;
  t.net.tap = (m) => (isCreditFrame(m) && lost++ === 0 ? 'drop' : 'deliver');
  consumer.callAgentStream('producer', 'count', null, t.callbacks({ creditWindow: 1 }));
  assert.deepEqual(t.chunks(), [0], 'the first grant was lost: the producer waits');
  t.clock.advanceTo(2_500);
  assert.deepEqual(t.chunks(), range(10));
  assert.deepEqual(t.events.at(-1), ['end', 'done'], 'no timeout');
});

test('KSP-FC: peers without flow control interoperate: no offer honoured, no grants sent', () => {
  const t = setup();
  const consumer = t.net.bus('consumer');
  const producer = t.net.bus('producer');
  let emitter;
  producer.registerStreamMethod('hold', (_, stream) => { emitter = stream; });
  consumer.callAgentStream('producer', 'hold', null, t.callbacks());
  assert.equal(emitter.isFlowControlled, false);
  for (let i = 0; i < 20; i += 1) emitter.chunk(i);
  emitter.end();
  assert.deepEqual(t.chunks(), range(20));
  // A producer that ignores the offer never acknowledges it, so the consumer grants nothing.
  const t2 = setup();
  const c2 = t2.net.bus('consumer');
  const p2 = t2.net.bus('producer');
  p2.registerStreamMethod('plain', (_, stream) => {
    for (let i = 0; i < 20; i += 1) p2.send(p2.message('consumer', 'stream_chunk', i, { streamId: stream.streamId, metadata: { seq: i } }));
    p2.send(p2.message('consumer', 'stream_end', null, { streamId: stream.streamId, metadata: { seq: 20 } }));
  });
  c2.callAgentStream('producer', 'plain', null, t2.callbacks({ creditWindow: 4 }));
  assert.deepEqual(t2.chunks(), range(20));
  assert.equal(t2.net.sent(isCreditFrame).length, 0);
});

// Item 6 --------------------------------------------------------------------------------------

test('KSP-3.3: a stream_end held back while earlier chunks are missing refreshes the stream', () => {
  const t = setup();
  const consumer = t.net.bus('consumer', { streamTimeoutMs: 10_000, sweepIntervalMs: 1_000 });
  const producer = t.net.bus('producer');
  let emitter;
  producer.registerStreamMethod('hold', (_, stream) => { emitter = stream; });
  consumer.callAgentStream('producer', 'hold', null, t.callbacks());
  emitter.chunk(0);
  let late = null;
  t.net.tap = (m) => { if (m.type === 'stream_chunk') { late = m; return 'drop'; } return 'deliver'; };
  emitter.chunk(1);
  t.clock.advanceTo(8_000);
  emitter.end('done'); // held back: chunk 1 is missing
  t.clock.advanceTo(16_000);
  assert.deepEqual(t.errors(), [], '16 s after the last chunk, but 8 s after the held end');
  t.net.route(late);
  assert.deepEqual(t.events, [['chunk', 0], ['chunk', 1], ['end', 'done']]);
});

test('KSP-3.3: a dropped message (KSP-1.2, 1.3, 3.5) or one from another worker never refreshes the stream', () => {
  const t = setup();
  const consumer = t.net.bus('consumer', { streamTimeoutMs: 10_000, sweepIntervalMs: 1_000 });
  const producer = t.net.bus('producer');
  let emitter;
  producer.registerStreamMethod('hold', (_, stream) => { emitter = stream; });
  const streamId = consumer.callAgentStream('producer', 'hold', null, t.callbacks());
  emitter.chunk(0);
  const base = { type: 'stream_chunk', payload: 'x', streamId, metadata: { seq: 1 } };
  const forged = [
    { ...base, messageId: 'intruder', sourceWorker: 'intruder', targetWorker: 'consumer' },
    { ...base, messageId: 'x'.repeat(300), sourceWorker: 'producer', targetWorker: 'consumer' },
    { ...base, messageId: 'misaddressed', sourceWorker: 'producer', targetWorker: 'someoneElse' },
    { messageId: 'end', sourceWorker: 'intruder', targetWorker: 'consumer', type: 'stream_end', payload: null, streamId, metadata: { seq: 5 } },
    { messageId: 'err', sourceWorker: 'intruder', targetWorker: 'consumer', type: 'stream_error', payload: null, streamId,
      error: { name: 'E', message: 'forged' } },
  ];
  for (let k = 1; k <= 6; k += 1) {
    t.clock.advanceTo(k * 2_000);
    for (const m of forged) consumer.receive(JSON.parse(JSON.stringify(m)));
  }
  assert.deepEqual(t.chunks(), [0]);
  assert.deepEqual(t.errors(), [ErrorCode.STREAM_TIMEOUT], 'idle since the chunk at 0 s');
});

test('KSP-3.4: a consumer holds back 1024 out-of-order chunks per stream; one more is dropped as reorder_overflow', () => {
  const t = setup();
  const consumer = t.net.bus('consumer');
  const producer = t.net.bus('producer');
  let emitter;
  producer.registerStreamMethod('hold', (_, stream) => { emitter = stream; });
  consumer.callAgentStream('producer', 'hold', null, t.callbacks());
  const held = [];
  t.net.tap = (m) => { if (m.type === 'stream_chunk') { held.push(m); return 'drop'; } return 'deliver'; };
  for (let i = 0; i <= 1025; i += 1) emitter.chunk(i);
  for (const m of held.slice(1, 1025)) t.net.route(m);
  assert.equal(consumer.stats().dropped.reorder_overflow, undefined, '1024 are held');
  t.net.route(held[1025]);
  assert.equal(consumer.stats().dropped.reorder_overflow, 1);
  t.net.route(held[0]);
  assert.deepEqual(t.chunks(), range(1025));
});

// Item 5 --------------------------------------------------------------------------------------

const big = { max: 9223372036854775807n, over: 9007199254740993n, edge: 9007199254740991n };
const bigJson = `{"edge":9007199254740991,"max":9223372036854775807,"over":9007199254740993,"list":[18446744073709551615,-9223372036854775808]}`;

test('KSP-3.2 (I-JSON): integers beyond 2^53 pass through the bus as doubles, without error; within 2^53 exactly', () => {
  const t = setup();
  const consumer = t.net.bus('consumer');
  const producer = t.net.bus('producer');
  producer.registerStreamMethod('big', (args, stream) => { stream.chunk(args); stream.end(args); });
  consumer.callAgentStream('producer', 'big', JSON.parse(bigJson), t.callbacks());
  const [chunk] = t.chunks();
  assert.equal(chunk.edge, Number(big.edge), 'within ±(2^53−1): exact');
  assert.equal(chunk.over, Number(big.over), 'beyond: the nearest double');
  assert.equal(chunk.max, Number(big.max));
  assert.equal(t.errors().length, 0);
  assert.equal(consumer.stats().dropped.invalid, undefined);
});

test('KSP-3.2 (I-JSON): the adapter takes integers beyond 2^53 in args, chunks and deliveries without reporting an error', async () => {
  const adapter = fileURLToPath(new URL('../adapter.mjs', import.meta.url));
  const child = spawn(process.execPath, [adapter], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => { stdout += d; });
  child.stderr.on('data', (d) => { stderr += d; });
  const ops = [
    '{"id":1,"op":"hello","protocol":"kensho-adapter/1"}',
    '{"id":2,"op":"configure","seed":18446744073709551615,"streamTimeoutMs":300000,"sweepIntervalMs":60000,"workers":["p","c"]}',
    '{"id":3,"op":"register","worker":"p","method":"big"}',
    `{"id":4,"op":"call","worker":"c","target":"p","method":"big","args":${bigJson},"throwIn":[]}`,
    `{"id":5,"op":"deliver","worker":"c","messages":[{"messageId":"m1","sourceWorker":"p","targetWorker":"c","type":"stream_chunk","payload":${bigJson},"streamId":"s-unknown","metadata":{"seq":0}}]}`,
    '{"id":6,"op":"shutdown"}',
  ];
  child.stdin.end(ops.join('\n') + '\n');
  await new Promise((resolve) => child.on('close', resolve));
  const events = stdout.trim().split('\n').map((line) => JSON.parse(line));
  const acks = events.filter((e) => e.event === 'ack');
  assert.equal(acks.length, ops.length);
  for (const ack of acks) assert.equal(ack.error, undefined, JSON.stringify(ack));
  assert.equal(stderr, '');
  const request = events.find((e) => e.event === 'send' && e.message.type === 'stream_request');
  assert.equal(request.message.payload.args.edge, Number(big.edge));
  assert.equal(request.message.payload.args.over, Number(big.over));
});
