// Tests of the WebSocket relay (relay.mjs), named by the KSP-11 rule each concerns
// (../shared/PROTOCOL.md §11), then of the bus on its WebSocket transport (ws-transport.mjs)
// and of the adapter's relay mode. Run them with
//
//   node --test Adapters/node/test/
//
// They need the `ws` library (Debian's node-ws, found by ws-lib.mjs). Each starts its own relay
// on a port the system chooses, and closes every socket it opened.
import { test as nodeTest, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { loadWs } from '../ws-lib.mjs';
import { startRelay as startRelayModule, parseArguments, RELAY_DEFECTS } from '../relay.mjs';
import { WsTransport, urlWithToken } from '../ws-transport.mjs';
import { MessageBus, systemClock } from '../kensho-bus.mjs';

// Helpers ---------------------------------------------------------------------------------------

/** Every test ends within 30 s, even a failing one (a broken relay must not hang `node --test`). */
const test = (name, fn) => nodeTest(name, { timeout: 30_000 }, fn);

// Whatever a test opens is also closed at the end of the file, in case the test did not get to
// close it (a timeout, a failure), so that no socket, server or process keeps node running.
const cleanups = [];
const track = (cleanup) => cleanups.push(cleanup);
after(async () => { await Promise.allSettled(cleanups.map((cleanup) => cleanup())); });

async function startRelay(options) {
  const relay = await startRelayModule(options);
  track(() => relay.close());
  return relay;
}

function newTransport(options) {
  const transport = new WsTransport(options);
  track(() => transport.close());
  return transport;
}

const { WebSocket, WebSocketServer } = loadWs();

/** Resolves when `predicate()` holds; rejects after `ms`, saying what it waited for. */
function until(predicate, what, ms = 5000) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const check = () => {
      let value;
      try {
        value = predicate();
      } catch (e) {
        reject(e);
        return;
      }
      if (value) resolve(value);
      else if (Date.now() - started > ms) reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
      else setTimeout(check, 2);
    };
    check();
  });
}

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

/**
 * A client of the relay at `url`: `frames` holds every frame after the first (the relay's
 * server_info, in `serverInfo`) as `{data, isBinary, text}`. Resolves once that first frame came.
 */
function connect(url, options = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, ...options });
    track(() => ws.terminate());
    const client = { ws, frames: [], first: null, serverInfo: null, closeCode: null };
    client.texts = () => client.frames.filter((f) => !f.isBinary).map((f) => f.text);
    client.closed = new Promise((done) => ws.on('close', (code) => { client.closeCode = code; done(code); }));
    ws.on('message', (data, isBinary) => {
      const frame = { data, isBinary, text: isBinary ? null : data.toString('utf8') };
      if (client.first === null) {
        client.first = frame;
        try { client.serverInfo = JSON.parse(frame.text); } catch { client.serverInfo = null; }
        resolve(client);
        return;
      }
      client.frames.push(frame);
    });
    ws.on('error', (e) => reject(e));
    /** Sends `ping` and waits for the relay's `pong`: every frame this client sent before has been handled. */
    client.barrier = async () => {
      const before = client.pongs();
      ws.send('ping');
      await until(() => client.pongs() > before, 'a pong');
    };
    client.pongs = () => client.frames.filter((f) => !f.isBinary && f.text === 'pong').length;
  });
}

/** Closes every client (at once) and the relay. */
async function closeAll(relay, clients) {
  for (const c of clients) c.ws.terminate();
  await Promise.all(clients.map((c) => c.closed));
  await relay?.close();
}

/** The error an upgrade to `url` ends with (e.g. "Unexpected server response: 401"), or "open". */
function upgradeOutcome(url, options = {}) {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, ...options });
    track(() => ws.terminate());
    ws.on('open', () => { ws.terminate(); resolve('open'); });
    ws.on('error', (e) => resolve(e.message));
  });
}

/** A relay on a free port, and clients connected to it; `done()` closes them all. */
async function setup(count, relayOptions = {}, clientOptions = {}) {
  const relay = await startRelay({ host: '127.0.0.1', port: 0, ...relayOptions });
  const clients = [];
  for (let i = 0; i < count; i += 1) clients.push(await connect(relay.url, clientOptions));
  return { relay, clients, done: () => closeAll(relay, clients) };
}

/** Frames that are not the relay's answers to this client's own pings. */
const forwarded = (c) => c.frames.filter((f) => f.isBinary || f.text !== 'pong');

// KSP-11.1 ------------------------------------------------------------------------------------

test('KSP-11.1: a frame goes to every other open connection, once, and never back to its sender', async () => {
  const { relay, clients, done } = await setup(3);
  try {
    const [a, b, c] = clients;
    for (const [name, client] of [['a', a], ['b', b], ['c', c]]) client.ws.send(`from-${name}`);
    for (const client of clients) await until(() => forwarded(client).length === 2, 'two forwarded frames');
    // A pong follows every earlier frame of its sender: an echo would have come before it.
    for (const client of clients) await client.barrier();
    assert.deepEqual(a.texts().filter((t) => t !== 'pong').sort(), ['from-b', 'from-c']);
    assert.deepEqual(b.texts().filter((t) => t !== 'pong').sort(), ['from-a', 'from-c']);
    assert.deepEqual(c.texts().filter((t) => t !== 'pong').sort(), ['from-a', 'from-b']);
    const stats = relay.stats();
    assert.equal(stats.framesOut, 6);
    assert.equal(stats.dropped, 0);
    assert.equal(stats.connections, 3);
  } finally {
    await done();
  }
});

test('KSP-11.1: a closed connection no longer receives, and the others still do', async () => {
  const { relay, clients, done } = await setup(3);
  try {
    const [a, b, c] = clients;
    c.ws.close();
    await c.closed;
    await until(() => relay.stats().open === 2, 'the relay to see the close');
    a.ws.send('after-close');
    await until(() => b.texts().includes('after-close'), 'b to receive');
    assert.equal(relay.stats().framesOut, 1);
  } finally {
    await done();
  }
});

test('KSP-11.1: text stays text and binary stays binary, byte for byte', async () => {
  const { clients, done } = await setup(2);
  try {
    const [a, b] = clients;
    const sent = [
      ['hello', false],
      [Buffer.from([0, 1, 2, 255, 254]), true],
      [Buffer.from('ping'), true], // a binary "ping" is an ordinary frame (KSP-11.3 is about text)
      ['{"type":"stream_chunk","payload":"é ✓ 😀"}', false],
      ['', false],
      [Buffer.alloc(0), true],
      [Buffer.alloc(70_000, 7), true], // over 64 KiB: the 8-byte length form
    ];
    for (const [data, binary] of sent) a.ws.send(data, { binary });
    await until(() => b.frames.length === sent.length, `${sent.length} frames`);
    b.frames.forEach((frame, i) => {
      const [data, binary] = sent[i];
      assert.equal(frame.isBinary, binary, `frame ${i} kind`);
      assert.deepEqual(Buffer.from(frame.data), Buffer.from(data), `frame ${i} bytes`);
    });
  } finally {
    await done();
  }
});

// KSP-11.2 ------------------------------------------------------------------------------------

test('KSP-11.2: 10 000 frames from each of two senders reach every receiver in the order each sent them', async () => {
  const { relay, clients, done } = await setup(3);
  try {
    const [a, b, c] = clients;
    const N = 10_000;
    for (let i = 0; i < N; i += 1) {
      a.ws.send(`a:${i}`);
      b.ws.send(`b:${i}`);
    }
    await until(() => c.frames.length === 2 * N && a.frames.length === N && b.frames.length === N, 'every frame', 10_000);
    const sequence = (client, sender) => client.texts().filter((t) => t.startsWith(`${sender}:`)).map((t) => Number(t.slice(2)));
    const expected = Array.from({ length: N }, (_, i) => i);
    assert.deepEqual(sequence(c, 'a'), expected);
    assert.deepEqual(sequence(c, 'b'), expected);
    assert.deepEqual(sequence(b, 'a'), expected);
    assert.deepEqual(sequence(a, 'b'), expected);
    assert.equal(relay.stats().dropped, 0);
  } finally {
    await done();
  }
});

// KSP-11.3 ------------------------------------------------------------------------------------

test('KSP-11.3: a text "ping" is answered "pong" to its sender only, and not forwarded', async () => {
  const { relay, clients, done } = await setup(3);
  try {
    const [a, b, c] = clients;
    a.ws.send('ping');
    a.ws.send('after-ping');
    await until(() => a.pongs() === 1, 'the pong');
    assert.deepEqual(a.frames.map((f) => [f.text, f.isBinary]), [['pong', false]]);
    await until(() => b.frames.length > 0 && c.frames.length > 0, 'the frame after the ping');
    assert.deepEqual(b.texts(), ['after-ping'], 'the ping went no further');
    assert.deepEqual(c.texts(), ['after-ping']);
    // Only "ping" exactly: anything else is an ordinary frame.
    for (const other of ['PING', 'ping ', ' ping', 'pingping', 'pong']) a.ws.send(other);
    await until(() => b.frames.length === 6, 'the look-alikes');
    assert.deepEqual(b.texts(), ['after-ping', 'PING', 'ping ', ' ping', 'pingping', 'pong']);
    await a.barrier();
    assert.equal(a.pongs(), 2, 'one pong per ping, none for the look-alikes');
    assert.equal(relay.stats().pings, 2);
  } finally {
    await done();
  }
});

// KSP-11.4 ------------------------------------------------------------------------------------

test('KSP-11.4: the first frame of every connection is the relay\'s server_info', async () => {
  const { clients, relay, done } = await setup(1);
  try {
    const [a] = clients;
    assert.equal(a.first.isBinary, false);
    assert.deepEqual(a.serverInfo, { type: 'server_info', name: 'kensho-js-relay', version: '1', clients: 1 });
    // Even with frames flowing when it connects, server_info comes first.
    const flood = setInterval(() => a.ws.send('busy'), 0);
    const b = await connect(relay.url);
    clients.push(b);
    clearInterval(flood);
    assert.equal(b.serverInfo.type, 'server_info');
    assert.equal(b.serverInfo.clients, 2);
  } finally {
    await done();
  }
});

// KSP-11.5 ------------------------------------------------------------------------------------

test('KSP-11.5: with a token, an upgrade without a valid one is refused with 401; the query and the header are accepted', async () => {
  const relay = await startRelay({ host: '127.0.0.1', port: 0, token: 's3cret' });
  try {
    const base = relay.url;
    assert.match(await upgradeOutcome(base), /401/);
    assert.match(await upgradeOutcome(`${base}?token=wrong`), /401/);
    assert.match(await upgradeOutcome(`${base}?token=`), /401/);
    assert.match(await upgradeOutcome(base, { headers: { Authorization: 'Bearer wrong' } }), /401/);
    assert.match(await upgradeOutcome(base, { headers: { Authorization: 'Basic s3cret' } }), /401/);
    assert.equal(await upgradeOutcome(`${base}?token=s3cret`), 'open');
    assert.equal(await upgradeOutcome(base, { headers: { Authorization: 'Bearer s3cret' } }), 'open');
    assert.equal(await upgradeOutcome(base, { headers: { authorization: 'bearer s3cret' } }), 'open');
    assert.equal(relay.stats().refused, 5);
    assert.equal(relay.stats().connections, 3);
    // A wrong path is no relay either.
    assert.match(await upgradeOutcome(`${base}other?token=s3cret`), /404/);
  } finally {
    await relay.close();
  }
});

/**
 * Sends an upgrade request and, in the same write, a masked text frame twice; resolves with
 * what came back once the relay closes, or at once when `keepOpen` (then closing it is the caller's).
 */
function rawUpgradeWithFrame(port, path, text, keepOpen = false) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    track(() => socket.destroy());
    let answer = '';
    let answered = false;
    socket.on('data', (d) => {
      answer += d.toString('latin1');
      if (answered || !answer.includes('\r\n\r\n')) return;
      answered = true;
      if (keepOpen) resolve({ answer, socket });
      else setTimeout(() => socket.destroy(), 50); // a relay that upgraded: long enough to forward
    });
    socket.on('error', reject);
    socket.on('close', () => resolve(answer));
    const payload = Buffer.from(text);
    const mask = Buffer.from([1, 2, 3, 4]);
    const frame = Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask,
      Buffer.from(payload.map((byte, i) => byte ^ mask[i % 4]))]);
    socket.write(Buffer.concat([Buffer.from([`GET ${path} HTTP/1.1`, 'Host: relay', 'Upgrade: websocket',
      'Connection: Upgrade', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13', '', ''].join('\r\n')),
    frame, frame]));
  });
}

test('KSP-11.5: a frame from a client the relay has not admitted is never forwarded', async () => {
  const { relay, clients, done } = await setup(2, { token: 's3cret' }, { headers: { Authorization: 'Bearer s3cret' } });
  try {
    const [a, b] = clients;
    const refused = await rawUpgradeWithFrame(relay.port, '/', 'intruder');
    assert.match(refused, /^HTTP\/1\.1 401 /);
    const wrong = await rawUpgradeWithFrame(relay.port, '/?token=guess', 'intruder');
    assert.match(wrong, /^HTTP\/1\.1 401 /);
    // The same bytes with the token are admitted and forwarded: the test can see an intruder.
    const admitted = await rawUpgradeWithFrame(relay.port, '/?token=s3cret', 'welcome', true);
    assert.match(admitted.answer, /^HTTP\/1\.1 101 /);
    await until(() => b.texts().filter((t) => t === 'welcome').length === 2, 'the admitted raw client\'s frames');
    admitted.socket.destroy();
    await sleep(20);
    a.ws.send('marker');
    await until(() => b.texts().includes('marker'), 'the marker');
    assert.deepEqual(b.texts(), ['welcome', 'welcome', 'marker']);
    assert.deepEqual(a.texts(), ['welcome', 'welcome']);
    assert.equal(relay.stats().refused, 2);
  } finally {
    await done();
  }
});

// KSP-11.6 ------------------------------------------------------------------------------------

test('KSP-11.6: a stalled receiver does not delay the others; what it cannot take is dropped and counted, its buffer bounded', async () => {
  const maxBufferedBytes = 8 * 1024 * 1024; // the default
  const { relay, clients, done } = await setup(3);
  try {
    const [sender, fast, stalled] = clients;
    stalled.ws._socket.pause(); // reads nothing more: the relay's writes to it back up
    const FRAMES = 640; // 40 MiB of 64 KiB frames
    const frame = (i) => { const b = Buffer.alloc(64 * 1024, i & 0xff); b.writeUInt32BE(i, 0); return b; };
    const started = Date.now();
    for (let i = 0; i < FRAMES; i += 1) sender.ws.send(frame(i), { binary: true });
    await until(() => fast.frames.length === FRAMES, 'the fast receiver to get all 40 MiB', 15_000);
    const elapsed = Date.now() - started;
    assert.deepEqual(fast.frames.map((f) => f.data.readUInt32BE(0)), Array.from({ length: FRAMES }, (_, i) => i));

    const stats = relay.stats();
    const mine = stats.clients.find((c) => c.framesIn === FRAMES);
    const fastOne = stats.clients.find((c) => c !== mine && c.framesOut === FRAMES);
    const stalledOne = stats.clients.find((c) => c !== mine && c !== fastOne);
    assert.ok(fastOne && stalledOne, JSON.stringify(stats));
    assert.equal(fastOne.dropped, 0);
    assert.ok(stalledOne.dropped > 0, 'frames were dropped for the stalled receiver');
    assert.equal(stalledOne.framesOut + stalledOne.dropped, FRAMES, 'each frame sent to it or counted as dropped');
    assert.equal(stats.dropped, stalledOne.dropped);
    assert.ok(stalledOne.maxBufferedAmount <= maxBufferedBytes + 64,
      `buffered for the stalled receiver: ${stalledOne.maxBufferedAmount} bytes`);

    // Once it reads again, it gets exactly the frames not dropped, in order.
    stalled.ws._socket.resume();
    await until(() => stalled.frames.length === stalledOne.framesOut, 'the stalled receiver to catch up', 10_000);
    const got = stalled.frames.map((f) => f.data.readUInt32BE(0));
    assert.ok(got.every((v, i) => i === 0 || v > got[i - 1]), 'in order');
    assert.ok(elapsed < 10_000, `the fast receiver took ${elapsed} ms`);
  } finally {
    await done();
  }
});

test('KSP-11.6: with a small bound, the buffered bytes stay under it and the other receivers get everything', async () => {
  const maxBufferedBytes = 256 * 1024;
  const { relay, clients, done } = await setup(3, { maxBufferedBytes });
  try {
    const [sender, fast, stalled] = clients;
    stalled.ws._socket.pause();
    // Paced by the fast receiver (which shares this process with the relay and the sender, and
    // would itself fall behind a 256 KiB bound under an 8 MB burst).
    for (let i = 0; i < 2000; i += 1) {
      sender.ws.send(`${i}:${'x'.repeat(4000)}`);
      if (i % 20 === 19) await until(() => fast.frames.length === i + 1, 'the fast receiver');
    }
    assert.deepEqual(fast.frames.map((f) => Number(f.text.split(':')[0])), Array.from({ length: 2000 }, (_, i) => i));
    const s = relay.stats().clients.find((c) => c.dropped > 0);
    assert.ok(s, 'drops for the stalled one');
    assert.ok(s.maxBufferedAmount <= maxBufferedBytes + 64, `${s.maxBufferedAmount}`);
    assert.equal(s.framesOut + s.dropped, 2000);
  } finally {
    await done();
  }
});

// Frame size ------------------------------------------------------------------------------------

test('KSP-11 limits: a frame over maxFrameBytes closes its sender with 1009 and is not forwarded', async () => {
  const { relay, clients, done } = await setup(3);
  try {
    const [a, b, c] = clients;
    a.ws.send(Buffer.alloc(1024 * 1024, 1)); // exactly 1 MiB: allowed
    await until(() => b.frames.length === 1, 'the 1 MiB frame');
    a.ws.send(Buffer.alloc(1024 * 1024 + 1, 2));
    assert.equal(await until(() => a.closeCode, 'the sender to be closed'), 1009);
    c.ws.send('marker');
    await until(() => b.texts().includes('marker'), 'the marker');
    assert.equal(b.frames.length, 2, 'the oversized frame never came');
    assert.equal(relay.stats().oversized, 1);
  } finally {
    await done();
  }
});

// Buses on WebSocket transports ----------------------------------------------------------------

/** A bus named `name` on its own connection to `url`. */
function busOn(url, name, options = {}) {
  const transport = newTransport({ url, ...options.transport });
  const bus = new MessageBus({ name, transport, clock: systemClock, ...options.bus });
  transport.attach(bus);
  return { bus, transport };
}

async function disposeAll(nodes) {
  for (const { bus } of nodes) bus.dispose(); // stops the sweep timer, closes the transport
  await Promise.all(nodes.map(({ transport }) => transport.close()));
}

/** Calls `method` and resolves with every chunk and the end (or rejects with the stream's error). */
function stream(consumer, producer, method, args, extra = {}) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    consumer.callAgentStream(producer, method, args, {
      onChunk: (c) => chunks.push(c),
      onEnd: (summary) => resolve({ chunks, summary }),
      onError: (e) => reject(Object.assign(new Error(`${e.code}: ${e.message}`), { error: e })),
      ...extra,
    });
  });
}

test('KSP-11 with KSP-3.2, 4.1: a consumer streams from a producer through the relay, every chunk in order, then the end', async () => {
  const relay = await startRelay({ host: '127.0.0.1', port: 0 });
  const nodes = [busOn(relay.url, 'consumer'), busOn(relay.url, 'producer'), busOn(relay.url, 'bystander')];
  try {
    await Promise.all(nodes.map(({ transport }) => transport.ready));
    const [consumer, producer, bystander] = nodes.map((n) => n.bus);
    const N = 500;
    producer.registerStreamMethod('count', (args, s) => {
      for (let i = 0; i < args.n; i += 1) s.chunk({ i, text: `token ${i} é` });
      s.end({ chunks: args.n });
    });
    const { chunks, summary } = await stream(consumer, 'producer', 'count', { n: N });
    assert.deepEqual(chunks, Array.from({ length: N }, (_, i) => ({ i, text: `token ${i} é` })));
    assert.deepEqual(summary, { chunks: N });
    assert.equal(consumer.activeStreams.size + producer.emitters.size, 0);
    assert.deepEqual(consumer.stats().dropped, {}, 'server_info and pongs never reach the bus; no echo');
    assert.deepEqual(producer.stats().dropped, {});
    // The relay broadcasts; the bus of a third worker drops what is not addressed to it (KSP-1.3).
    await until(() => bystander.stats().received === N + 2, 'the bystander to see the request, the chunks and the end');
    assert.deepEqual(bystander.stats().dropped, { not_addressed: N + 2 });
  } finally {
    await disposeAll(nodes);
    await relay.close();
  }
});

test('KSP-11 with KSP-FC: a flow-controlled stream (credit window 4) through the relay', async () => {
  const relay = await startRelay({ host: '127.0.0.1', port: 0 });
  const nodes = [busOn(relay.url, 'consumer'), busOn(relay.url, 'producer')];
  try {
    await Promise.all(nodes.map(({ transport }) => transport.ready));
    const [consumer, producer] = nodes.map((n) => n.bus);
    let maxAhead = 0;
    producer.registerStreamMethod('count', (args, s) => {
      let i = 0;
      const go = () => {
        while (i < args.n) {
          if (s.availableCredit === 0) { s.onCredit(go); return; }
          s.chunk(i);
          i += 1;
          maxAhead = Math.max(maxAhead, s.seq - consumed);
        }
        s.end('done');
      };
      go();
    });
    let consumed = 0;
    const result = await stream(consumer, 'producer', 'count', { n: 300 }, { creditWindow: 4, onChunk: () => { consumed += 1; } });
    assert.equal(consumed, 300);
    assert.equal(result.summary, 'done');
    assert.ok(maxAhead <= 4, `${maxAhead} chunks ahead of the consumer`);
  } finally {
    await disposeAll(nodes);
    await relay.close();
  }
});

test('KSP-1.2 over the relay: frames that are not KenshoMessages are dropped and counted by the bus; pong and server_info never reach it', async () => {
  const relay = await startRelay({ host: '127.0.0.1', port: 0 });
  const node = busOn(relay.url, 'consumer', { transport: { heartbeatMs: 20 } });
  const raw = await connect(relay.url);
  try {
    await node.transport.ready;
    for (const frame of ['not json', '{"x":1}', '[1,2]', '{"type":"server_info","name":"fake"}', 'pong']) raw.ws.send(frame);
    raw.ws.send(Buffer.from([0xff, 0x00]), { binary: true });
    await until(() => node.bus.stats().received === 4, 'the four candidate messages');
    await until(() => node.transport.stats().pongs >= 2, 'pongs to the heartbeat');
    // Not JSON, or JSON that is no KenshoMessage: dropped and counted (those without a
    // targetWorker under the bus's first test, KSP-1.3).
    assert.deepEqual(node.bus.stats().dropped, { invalid: 2, not_addressed: 2 });
    assert.equal(node.bus.stats().received, 4, 'pongs, heartbeats and server_info frames are the transport\'s');
    const t = node.transport.stats();
    assert.equal(t.serverInfo, 2, 'the relay\'s own and the forwarded look-alike');
    assert.equal(t.notJson, 2);
    assert.equal(raw.texts().filter((x) => x === 'ping').length, 0, 'the heartbeat is not forwarded');
  } finally {
    await disposeAll([node]);
    await closeAll(relay, [raw]);
  }
});

test('WebSocket transport: two heartbeats without any frame end the connection; it reconnects', async () => {
  // A server that accepts and then says nothing: no server_info, no pong.
  const silent = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  track(() => { for (const ws of silent.clients) ws.terminate(); silent.close(); });
  await new Promise((resolve) => silent.on('listening', resolve));
  let accepted = 0;
  silent.on('connection', (ws) => { accepted += 1; ws.on('error', () => {}); });
  const transport = newTransport({ url: `ws://127.0.0.1:${silent.address().port}/`, heartbeatMs: 40, readyGraceMs: 10 });
  try {
    await transport.ready; // no frame: ready shortly after opening
    await until(() => transport.stats().reconnects >= 1, 'a second connection', 3000);
    assert.ok(accepted >= 2);
    const stats = transport.stats();
    assert.ok(stats.staleConnections >= 1, JSON.stringify(stats));
  } finally {
    await transport.close();
    for (const ws of silent.clients) ws.terminate();
    await new Promise((resolve) => silent.close(resolve));
  }
});

test('WebSocket transport: messages sent while disconnected wait (bounded), then go in order; a lost relay is reconnected', async () => {
  const probe = await startRelay({ host: '127.0.0.1', port: 0 });
  const { port } = probe;
  await probe.close(); // a port where nothing listens, for now
  const transport = newTransport({ url: `ws://127.0.0.1:${port}/`, maxQueuedMessages: 3, backoffMinMs: 400, backoffMaxMs: 800 });
  let relay = null;
  const observers = [];
  try {
    const message = (i) => ({ messageId: `m${i}`, sourceWorker: 'producer', targetWorker: 'consumer', type: 'broadcast', payload: i });
    for (let i = 0; i < 5; i += 1) transport.send(message(i));
    assert.equal(transport.stats().queueDropped, 2);
    await until(() => transport.stats().errors >= 1, 'a refused connection');
    relay = await startRelay({ host: '127.0.0.1', port }); // well before the next attempt (>= 200 ms)
    const first = await connect(relay.url);
    observers.push(first);
    await transport.ready;
    await until(() => first.frames.length === 3, 'the queued messages', 3000);
    assert.deepEqual(first.texts().map((t) => JSON.parse(t).payload), [0, 1, 2]);

    await relay.close(); // the relay goes away (closing its connections), and comes back
    assert.equal(transport.isOpen, false);
    relay = await startRelay({ host: '127.0.0.1', port });
    const second = await connect(relay.url);
    observers.push(second);
    await until(() => transport.isOpen, 'the transport to reconnect', 3000);
    transport.send(message(9));
    await until(() => second.frames.length === 1, 'a message on the new connection');
    assert.equal(JSON.parse(second.texts()[0]).payload, 9);
    assert.ok(transport.stats().reconnects >= 1);
  } finally {
    await transport.close();
    await closeAll(relay, observers);
  }
});

test('WebSocket transport: close() before connecting rejects ready and stops retrying', async () => {
  const probe = await startRelay({ host: '127.0.0.1', port: 0 });
  await probe.close();
  const transport = newTransport({ url: `ws://127.0.0.1:${probe.port}/`, token: 'x y' });
  assert.match(transport.connectUrl, /\?token=x\+y$/);
  await transport.close();
  await assert.rejects(transport.ready, /closed before it connected/);
  transport.send({ anything: true }); // ignored
  assert.equal(transport.stats().queueLength, 0);
});

// The relay command ----------------------------------------------------------------------------

const relayScript = fileURLToPath(new URL('../relay.mjs', import.meta.url));

test('relay command: arguments and environment; bad ones are named, exit 2', async () => {
  assert.deepEqual(parseArguments(['--listen', '127.0.0.1:0'], {}), { host: '127.0.0.1', port: 0 });
  assert.deepEqual(parseArguments(['--listen=[::1]:8080', '--token', 't'], {}), { host: '::1', port: 8080, token: 't' });
  assert.deepEqual(parseArguments([], { KENSHO_RELAY_PORT: '9000', KENSHO_RELAY_TOKEN: 'k' }), { host: '127.0.0.1', port: 9000, token: 'k' });
  assert.deepEqual(parseArguments(['--listen', '0.0.0.0:1', '--max-frame-bytes', '10', '--max-buffered-bytes', '20'],
    { KENSHO_RELAY_PORT: '9000' }), { host: '0.0.0.0', port: 1, maxFrameBytes: 10, maxBufferedBytes: 20 });
  const run = (args, env = {}) => new Promise((resolve) => {
    const child = spawn(process.execPath, [relayScript, ...args], { env: { PATH: process.env.PATH, ...env } });
    track(() => child.kill('SIGKILL'));
    let stderr = '';
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('close', (code) => resolve({ code, stderr }));
  });
  for (const [args, env, named] of [
    [['--listen', 'localhost'], {}, '--listen'],
    [['--listen', '127.0.0.1:70000'], {}, '--listen'],
    [['--max-frame-bytes', 'lots'], {}, '--max-frame-bytes'],
    [['--max-buffered-bytes', '0'], {}, '--max-buffered-bytes'],
    [['--token'], {}, '--token'],
    [['--verbose'], {}, '--verbose'],
    [[], { KENSHO_RELAY_PORT: 'eighty' }, 'KENSHO_RELAY_PORT'],
  ]) {
    const { code, stderr } = await run(args, env);
    assert.equal(code, 2, `${args.join(' ')}: ${stderr}`);
    assert.ok(stderr.includes(named), stderr);
  }
});

test('relay command: one ready line on stdout; relays; on SIGTERM closes, prints its counters on stderr, exits 0', async () => {
  const child = spawn(process.execPath, [relayScript, '--listen', '127.0.0.1:0', '--token', 't'], { stdio: ['ignore', 'pipe', 'pipe'] });
  track(() => child.kill('SIGKILL'));
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => { stdout += d; });
  child.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  const clients = [];
  try {
    const line = await until(() => /^listening (ws:\/\/127\.0\.0\.1:(\d+)\/)\n$/.exec(stdout), 'the ready line');
    const url = `${line[1]}?token=t`;
    clients.push(await connect(url), await connect(url));
    clients[0].ws.send('hi');
    await until(() => clients[1].texts().includes('hi'), 'a forwarded frame');
    assert.match(await upgradeOutcome(line[1]), /401/);
    child.kill('SIGTERM');
    const { code } = await exited;
    assert.equal(code, 0);
    assert.equal(stdout, line[0], 'nothing else on stdout');
    const counters = JSON.parse(stderr.trim().split('\n').at(-1));
    assert.deepEqual(
      { connections: counters.connections, framesIn: counters.framesIn, framesOut: counters.framesOut, refused: counters.refused },
      { connections: 2, framesIn: 1, framesOut: 1, refused: 1 });
    assert.equal(counters.dropped, 0);
    await Promise.all(clients.map((c) => c.closed)); // the relay closed them
  } finally {
    child.kill('SIGKILL');
    for (const c of clients) c.ws.terminate();
  }
});

// Deliberate defects (RELAY_DEFECTS) -------------------------------------------------------------
//
// Each defect switch must really break its rule, and the relay without it must not: every
// observation below runs on a clean relay and on one with the defect, and both outcomes are
// checked. The tests above run the defect-free relay through every rule.

/** A client without the server_info wait of connect(): resolves once open, records every frame. */
function connectRaw(url, options = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, ...options });
    track(() => ws.terminate());
    const client = { ws, frames: [] };
    client.closed = new Promise((done) => ws.on('close', done));
    client.texts = () => client.frames.filter((f) => !f.isBinary).map((f) => f.text);
    ws.on('message', (data, isBinary) => client.frames.push({ data, isBinary, text: isBinary ? null : data.toString('utf8') }));
    ws.on('open', () => resolve(client));
    ws.on('error', reject);
  });
}

/** What a frame looks like to a test: `server_info` for the relay's, else its text or `bin:HEX`. */
const shown = (f) => {
  if (f.isBinary) return `bin:${Buffer.from(f.data).toString('hex')}`;
  try { if (JSON.parse(f.text)?.type === 'server_info') return 'server_info'; } catch { /* not JSON */ }
  return f.text;
};

const DEFECT_CASES = {
  // KSP-11.1: what the sender gets back besides its pongs.
  echo: {
    async observe(defects) {
      const { clients, done } = await setup(2, { defects });
      try {
        const [a, b] = clients;
        a.ws.send('x');
        a.ws.send(Buffer.from([1, 2]), { binary: true });
        await until(() => b.frames.length === 2, 'b to get both');
        await a.barrier(); // an echo goes out before the pong
        return forwarded(a).map(shown);
      } finally {
        await done();
      }
    },
    clean: [],
    broken: ['x', 'bin:0102'],
  },
  // KSP-11.1: the kind and bytes of what arrives (not UTF-8: the receiver must not reject it).
  'binary-as-text': {
    async observe(defects) {
      const { clients, done } = await setup(2, { defects }, { skipUTF8Validation: true });
      try {
        const [a, b] = clients;
        a.ws.send(Buffer.from([0, 1, 2, 255]), { binary: true });
        a.ws.send('text');
        await until(() => b.frames.length === 2, 'b to get both');
        return b.frames.map((f) => [f.isBinary, Buffer.from(f.data).toString('hex')]);
      } finally {
        await done();
      }
    },
    clean: [[true, '000102ff'], [false, '74657874']],
    broken: [[false, '000102ff'], [false, '74657874']],
  },
  // KSP-11.1: which of 14 frames each of two receivers missed; nothing is counted as dropped.
  'drop-some': {
    async observe(defects) {
      const { relay, clients, done } = await setup(3, { defects });
      try {
        const [a, b, c] = clients;
        for (let i = 0; i < 14; i += 1) a.ws.send(String(i));
        a.ws.send('last'); // the 15th
        await until(() => b.texts().includes('last') && c.texts().includes('last'), 'the last frame at b and c');
        const missed = (client) => Array.from({ length: 14 }, (_, i) => i).filter((i) => !client.texts().includes(String(i)));
        return { b: missed(b), c: missed(c), dropped: relay.stats().dropped };
      } finally {
        await done();
      }
    },
    clean: { b: [], c: [], dropped: 0 },
    broken: { b: [], c: [6, 13], dropped: 0 }, // the 7th and 14th, to the newest receiver
  },
  // KSP-11.2: the order of one sender's 12 frames at a receiver.
  reorder: {
    async observe(defects) {
      const { clients, done } = await setup(2, { defects });
      try {
        const [a, b] = clients;
        for (let i = 0; i < 12; i += 1) a.ws.send(String(i));
        await until(() => b.frames.length === 12, 'the 12 frames');
        return b.texts().map(Number);
      } finally {
        await done();
      }
    },
    clean: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
    broken: [0, 1, 2, 3, 5, 4, 6, 7, 8, 10, 9, 11], // the 5th after the 6th, the 10th after the 11th
  },
  // KSP-11.3: what the others get of a ping, and the pongs of its sender.
  'forward-ping': {
    async observe(defects) {
      const { clients, done } = await setup(2, { defects });
      try {
        const [a, b] = clients;
        a.ws.send('ping');
        a.ws.send('after');
        await until(() => b.texts().includes('after') && a.pongs() === 1, 'the frame after the ping, and the pong');
        return { b: b.texts(), aPongs: a.pongs() };
      } finally {
        await done();
      }
    },
    clean: { b: ['after'], aPongs: 1 },
    broken: { b: ['ping', 'after'], aPongs: 1 },
  },
  // KSP-11.3: the pongs each of three clients got for one ping of the first.
  'pong-to-all': {
    async observe(defects) {
      const { clients, done } = await setup(3, { defects });
      try {
        const [a, b, c] = clients;
        a.ws.send('ping');
        a.ws.send('after'); // forwarded after the pongs went out
        await until(() => b.texts().includes('after') && c.texts().includes('after') && a.pongs() === 1, 'the frame after the ping');
        return clients.map((client) => client.pongs());
      } finally {
        await done();
      }
    },
    clean: [1, 0, 0],
    broken: [1, 1, 1],
  },
  // KSP-11.4: everything two clients got, the second sending one frame and a ping.
  'no-server-info': {
    async observe(defects) {
      const relay = await startRelay({ host: '127.0.0.1', port: 0, defects });
      const a = await connectRaw(relay.url);
      const b = await connectRaw(relay.url);
      try {
        b.ws.send('hello');
        b.ws.send('ping');
        await until(() => a.texts().includes('hello') && b.texts().includes('pong'), 'the frame and the pong');
        return { a: a.frames.map(shown), b: b.frames.map(shown) };
      } finally {
        await closeAll(relay, [a, b]);
      }
    },
    clean: { a: ['server_info', 'hello'], b: ['server_info', 'pong'] },
    broken: { a: ['hello'], b: ['pong'] },
  },
  // KSP-11.5: upgrades with a token set, and whether a tokenless client's frame is forwarded.
  'no-auth': {
    async observe(defects) {
      const relay = await startRelay({ host: '127.0.0.1', port: 0, token: 's3cret', defects });
      const member = await connect(`${relay.url}?token=s3cret`);
      const clients = [member];
      try {
        const outcomes = [await upgradeOutcome(relay.url), await upgradeOutcome(`${relay.url}?token=wrong`),
          await upgradeOutcome(relay.url, { headers: { Authorization: 'Bearer wrong' } })]
          .map((o) => (/401/.test(o) ? '401' : o));
        let intruderForwarded = false;
        if (outcomes[0] === 'open') {
          const intruder = await connect(relay.url);
          clients.push(intruder);
          intruder.ws.send('intruder');
          await until(() => member.texts().includes('intruder'), 'the intruder\'s frame');
          intruderForwarded = true;
        }
        return { outcomes, intruderForwarded, refused: relay.stats().refused };
      } finally {
        await closeAll(relay, clients);
      }
    },
    clean: { outcomes: ['401', '401', '401'], intruderForwarded: false, refused: 3 },
    broken: { outcomes: ['open', 'open', 'open'], intruderForwarded: true, refused: 0 },
  },
  // KSP-11.6: a stalled receiver under a 256 KiB bound while 8 MB go by.
  unbounded: {
    async observe(defects) {
      const maxBufferedBytes = 256 * 1024;
      const { relay, clients, done } = await setup(3, { maxBufferedBytes, defects });
      try {
        const [sender, fast, stalled] = clients;
        stalled.ws._socket.pause();
        const FRAMES = 2000;
        for (let i = 0; i < FRAMES; i += 1) {
          sender.ws.send(`${i}:${'x'.repeat(4000)}`);
          if (i % 20 === 19) await until(() => fast.frames.length === i + 1, 'the fast receiver');
        }
        const s = relay.stats().clients[2]; // in the order they connected: the stalled one
        assert.equal(s.framesOut + s.dropped, FRAMES, JSON.stringify(relay.stats()));
        stalled.ws._socket.resume();
        await until(() => stalled.frames.length === s.framesOut, 'the stalled receiver to catch up', 10_000);
        return { dropped: s.dropped > 0, bounded: s.maxBufferedAmount <= maxBufferedBytes + 64,
          stalledGotAll: stalled.frames.length === FRAMES, fastGotAll: fast.frames.length === FRAMES };
      } finally {
        await done();
      }
    },
    clean: { dropped: true, bounded: true, stalledGotAll: false, fastGotAll: true },
    broken: { dropped: false, bounded: false, stalledGotAll: true, fastGotAll: true },
  },
};

test('defects: one case per RELAY_DEFECTS name, one defect per KSP-11 rule', () => {
  assert.deepEqual(Object.keys(DEFECT_CASES), Object.keys(RELAY_DEFECTS));
  const rules = new Set(Object.values(RELAY_DEFECTS).map((text) => /\(KSP-(11\.\d)/.exec(text)?.[1]));
  assert.deepEqual([...rules].sort(), ['11.1', '11.2', '11.3', '11.4', '11.5', '11.6']);
});

for (const [name, { observe, clean, broken }] of Object.entries(DEFECT_CASES)) {
  test(`defect ${name}: ${RELAY_DEFECTS[name]} Without it, the relay keeps the rule`, async () => {
    assert.deepEqual(await observe([]), clean, 'the relay without defects');
    assert.deepEqual(await observe([name]), broken, `the relay with --defect ${name}`);
  });
}

test('defect reorder: a held frame with no frame after it still goes out, a little later', async () => {
  const { clients, done } = await setup(2, { defects: ['reorder'] });
  try {
    const [a, b] = clients;
    for (let i = 0; i < 5; i += 1) a.ws.send(String(i));
    await until(() => b.frames.length === 4, 'the first four');
    await until(() => b.frames.length === 5, 'the held fifth', 2000);
    assert.deepEqual(b.texts(), ['0', '1', '2', '3', '4']);
  } finally {
    await done();
  }
});

test('defects: several at once; other defects leave a rule alone', async () => {
  const { relay, clients, done } = await setup(3, { defects: ['echo', 'pong-to-all', 'echo'] });
  try {
    assert.deepEqual(relay.defects, ['echo', 'pong-to-all']);
    const [a, b, c] = clients;
    a.ws.send(Buffer.from([9]), { binary: true }); // binary stays binary
    a.ws.send('ping'); // not echoed, not forwarded
    await until(() => b.pongs() === 1 && c.pongs() === 1 && a.pongs() === 1 && forwarded(a).length === 1, 'echo and pongs');
    assert.deepEqual(forwarded(a).map(shown), ['bin:09']);
    assert.deepEqual(forwarded(b).map(shown), ['bin:09']);
    assert.equal(b.serverInfo.type, 'server_info');
  } finally {
    await done();
  }
  const plain = await startRelay({ host: '127.0.0.1', port: 0 });
  assert.deepEqual(plain.defects, []);
  await plain.close();
  await assert.rejects(startRelayModule({ host: '127.0.0.1', port: 0, defects: ['echo', 'nope'] }),
    (e) => e instanceof RangeError && e.message.includes('"nope"') && e.message.includes('no-auth'));
});

test('defects on the command line: --defect NAME (repeatable), else KENSHO_RELAY_DEFECTS; unknown ones exit 2 listing the known', async () => {
  assert.deepEqual(parseArguments(['--defect', 'echo', '--defect=reorder'], {}), { defects: ['echo', 'reorder'] });
  assert.deepEqual(parseArguments([], { KENSHO_RELAY_DEFECTS: ' no-auth, unbounded ,' }), { defects: ['no-auth', 'unbounded'] });
  assert.deepEqual(parseArguments(['--defect', 'echo'], { KENSHO_RELAY_DEFECTS: 'no-auth' }), { defects: ['echo'] });
  assert.deepEqual(parseArguments([], { KENSHO_RELAY_DEFECTS: '' }), {});
  assert.deepEqual(parseArguments(['--list-defects'], {}), { listDefects: true });
  const run = (args, env = {}) => new Promise((resolve) => {
    const child = spawn(process.execPath, [relayScript, ...args], { env: { PATH: process.env.PATH, ...env } });
    track(() => child.kill('SIGKILL'));
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
  for (const [args, env, named] of [
    [['--listen', '127.0.0.1:0', '--defect', 'echoes'], {}, '--defect: unknown defect "echoes"'],
    [['--listen', '127.0.0.1:0', '--defect'], {}, '--defect expects a value'],
    [['--listen', '127.0.0.1:0'], { KENSHO_RELAY_DEFECTS: 'echo,bogus' }, 'KENSHO_RELAY_DEFECTS: unknown defect "bogus"'],
  ]) {
    const { code, stderr } = await run(args, env);
    assert.equal(code, 2, `${args.join(' ')}: ${stderr}`);
    assert.ok(stderr.includes(named), stderr);
    if (named.includes('unknown')) for (const known of Object.keys(RELAY_DEFECTS)) assert.ok(stderr.includes(known), stderr);
  }
  const listed = await run(['--list-defects']);
  assert.equal(listed.code, 0);
  assert.equal(listed.stdout, Object.entries(RELAY_DEFECTS).map(([n, t]) => `${n}\t${t}\n`).join(''));

  // A relay command with a defect on says so on stderr, and behaves accordingly.
  const child = spawn(process.execPath, [relayScript, '--listen', '127.0.0.1:0', '--defect', 'no-server-info'],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH, KENSHO_RELAY_DEFECTS: 'echo' } });
  track(() => child.kill('SIGKILL'));
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => { stdout += d; });
  child.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => child.on('close', resolve));
  const line = await until(() => /^listening (ws:\S+)\n$/.exec(stdout), 'the ready line');
  assert.match(stderr, /deliberate defects on: no-server-info\n/);
  const a = await connectRaw(line[1]);
  a.ws.send('hi'); // no echo: --defect replaces the environment's list
  a.ws.send('ping');
  await until(() => a.texts().includes('pong'), 'the pong');
  assert.deepEqual(a.texts(), ['pong'], 'no server_info, no echo');
  a.ws.terminate();
  child.kill('SIGTERM');
  assert.equal(await exited, 0);
});

test('README: the relay defect table lists RELAY_DEFECTS', async () => {
  const { readFile } = await import('node:fs/promises');
  const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8');
  const section = readme.split('### Relay defects')[1]?.split(/\n#{2,3} /)[0] ?? '';
  const names = [...section.matchAll(/^\| `([a-z-]+)` \|/gm)].map((m) => m[1]);
  assert.deepEqual(names, Object.keys(RELAY_DEFECTS));
});

// The adapter's relay mode ----------------------------------------------------------------------

const adapterScript = fileURLToPath(new URL('../adapter.mjs', import.meta.url));

/** The adapter as a child process: `op(obj)` writes an operation; `events` holds what it wrote. */
function startAdapter() {
  const child = spawn(process.execPath, [adapterScript], { stdio: ['pipe', 'pipe', 'pipe'] });
  track(() => child.kill('SIGKILL'));
  const adapter = { child, events: [], stderr: '' };
  let buffer = '';
  child.stdout.on('data', (d) => {
    buffer += d;
    let newline;
    while ((newline = buffer.indexOf('\n')) >= 0) {
      adapter.events.push(JSON.parse(buffer.slice(0, newline)));
      buffer = buffer.slice(newline + 1);
    }
  });
  child.stderr.on('data', (d) => { adapter.stderr += d; });
  adapter.exited = new Promise((resolve) => child.on('close', resolve));
  let id = 0;
  adapter.op = async (op, ms = 5000) => {
    id += 1;
    const mine = id;
    child.stdin.write(`${JSON.stringify({ id: mine, ...op })}\n`);
    return until(() => adapter.events.find((e) => e.event === 'ack' && e.id === mine), `the ack of ${op.op}`, ms);
  };
  return adapter;
}

test('adapter relay mode: configure.relay puts the workers on the relay; callbacks still come as events, no send events', async () => {
  const relay = await startRelay({ host: '127.0.0.1', port: 0, token: 'k' });
  const wire = await connect(`${relay.url}?token=k`); // the harness's view of the wire
  const adapter = startAdapter();
  try {
    const hello = await adapter.op({ op: 'hello', protocol: 'kensho-adapter/1' });
    assert.ok(hello.capabilities.includes('relay'), JSON.stringify(hello));
    const configured = await adapter.op({ op: 'configure', seed: 1, streamTimeoutMs: 300000, sweepIntervalMs: 60000,
      workers: ['consumer', 'producer'], relay: { url: relay.url, token: 'k' } });
    assert.equal(configured.error, undefined);
    assert.equal(relay.stats().open, 3, 'one connection per worker, open before the ack');
    assert.equal((await adapter.op({ op: 'register', worker: 'producer', method: 'numbers' })).error, undefined);
    const call = await adapter.op({ op: 'call', worker: 'consumer', target: 'producer', method: 'numbers', args: { count: 3 }, throwIn: [] });
    const { streamId } = call;
    assert.equal(call.nextTimerMs, null, 'real time: no timer for the harness to advance');
    await until(() => adapter.events.find((e) => e.event === 'handler' && e.streamId === streamId), 'the handler event');
    for (let i = 0; i < 3; i += 1) {
      assert.equal((await adapter.op({ op: 'chunk', worker: 'producer', streamId, data: i })).result, 'ok');
    }
    assert.equal((await adapter.op({ op: 'end', worker: 'producer', streamId, summary: { chunks: 3 } })).result, 'ok');
    await until(() => adapter.events.find((e) => e.event === 'end'), 'the end event');
    const callbacks = adapter.events.filter((e) => ['chunk', 'end', 'error'].includes(e.event));
    assert.deepEqual(callbacks, [
      { event: 'chunk', worker: 'consumer', streamId, data: 0 },
      { event: 'chunk', worker: 'consumer', streamId, data: 1 },
      { event: 'chunk', worker: 'consumer', streamId, data: 2 },
      { event: 'end', worker: 'consumer', streamId, summary: { chunks: 3 } },
    ]);
    assert.equal(adapter.events.filter((e) => e.event === 'send').length, 0);
    const seen = () => wire.texts().map((t) => JSON.parse(t));
    await until(() => seen().length === 5, 'the five messages on the wire');
    assert.deepEqual(seen().map((m) => [m.type, m.sourceWorker, m.targetWorker]), [
      ['stream_request', 'consumer', 'producer'], ['stream_chunk', 'producer', 'consumer'], ['stream_chunk', 'producer', 'consumer'],
      ['stream_chunk', 'producer', 'consumer'], ['stream_end', 'producer', 'consumer']]);
    const stats = await adapter.op({ op: 'stats', worker: 'consumer' });
    assert.deepEqual(stats.stats.dropped, {}, 'no echo of its own request; server_info and pongs stay in the transport');
    assert.equal(stats.stats.received, 4);
    await adapter.op({ op: 'shutdown' });
    assert.equal(await adapter.exited, 0);
    assert.equal(adapter.stderr, '');
  } finally {
    adapter.child.kill('SIGKILL');
    await closeAll(relay, [wire]);
  }
});

test('adapter relay mode: a relay that cannot be reached fails configure, naming the URL', async () => {
  const relay = await startRelay({ host: '127.0.0.1', port: 0, token: 'right' });
  const adapter = startAdapter();
  try {
    await adapter.op({ op: 'hello', protocol: 'kensho-adapter/1' });
    const ack = await adapter.op({ op: 'configure', seed: 1, streamTimeoutMs: 300000, sweepIntervalMs: 60000,
      workers: ['consumer'], relay: { url: relay.url, token: 'wrong', connectTimeoutMs: 500 } });
    assert.ok(ack.error.includes(relay.url), ack.error);
    assert.match(ack.error, /401/);
    assert.ok(!ack.error.includes('wrong'), 'the token is not shown');
    const bad = await adapter.op({ op: 'configure', workers: ['consumer'], relay: { url: 'http://nowhere' } });
    assert.match(bad.error, /configure\.relay/);
    await adapter.op({ op: 'shutdown' });
    assert.equal(await adapter.exited, 0);
  } finally {
    adapter.child.kill('SIGKILL');
    await relay.close();
  }
});

test('transport URL: the token as ?token= and the worker as ?worker=, escaped; the URL itself without either', () => {
  assert.equal(urlWithToken('ws://127.0.0.1:9/', undefined, undefined), 'ws://127.0.0.1:9/');
  assert.equal(urlWithToken('ws://127.0.0.1:9/', 't 1', 'consumer-0'), 'ws://127.0.0.1:9/?token=t+1&worker=consumer-0');
  assert.equal(urlWithToken('ws://127.0.0.1:9/', null, 'a&b'), 'ws://127.0.0.1:9/?worker=a%26b');
});
