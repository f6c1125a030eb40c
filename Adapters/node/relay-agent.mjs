#!/usr/bin/env node
// One Kensho agent (a MessageBus of kensho-bus.mjs) on a KSP-11 relay (../shared/PROTOCOL.md
// §11), through ws-transport.mjs: a producer or a consumer of the stream method `numbers`, for
// tests that put the agents on different hosts (Tests/netns/relay-across-hosts.sh).
//
//   node Adapters/node/relay-agent.mjs --url ws://HOST:PORT/ [--token T] --name NAME producer [--chunks N]
//   node Adapters/node/relay-agent.mjs --url ws://HOST:PORT/ [--token T] --name NAME consumer --target PRODUCER
//                                      [--chunks N] [--timeout-ms MS]
//
// producer: registers `numbers`, which streams the integers 0..N-1 (N = --chunks, default 1000)
//   as N chunks, then ends with the summary {"count": N}; it honours flow control when a
//   consumer offers it (KSP-FC) and cancellation (KSP-7). It runs until SIGTERM or SIGINT, then
//   exits 0. On stdout, one JSON line per event: {"event":"connected",...} once the relay took
//   it, {"event":"served",...} per stream finished (or cancelled), {"event":"stopped",...} at the end.
// consumer: waits until connected, then calls `numbers` on PRODUCER, again every second until
//   the first chunk (or the end) of one call arrives, since the producer may join later; the
//   other calls are cancelled. It checks that it received exactly 0..N-1, in order, then onEnd
//   with {"count": N}, and prints one JSON line: {"ok", "chunks" (received), "expected",
//   "summary", "attempts", "ms" (from the call that was answered to its end), "connectMs",
//   "totalMs", "error" (what was wrong, when not ok)}. --timeout-ms (default 30000) bounds the
//   whole run, connection included.
//
// Exit codes: 0 the stream was right (consumer) or the agent was stopped by a signal
// (producer); 1 the stream was wrong, incomplete or never answered before the timeout, or the
// consumer was interrupted (the JSON line says which); 2 a bad argument, the `ws` library
// missing, or no connection to the relay (refused token: at once; otherwise within the
// timeout; the consumer still prints its JSON line). Diagnostics go to stderr.
//
// The token may also come from the environment, KENSHO_RELAY_TOKEN (kept out of `ps`).
import { performance } from 'node:perf_hooks';
import { isDeepStrictEqual } from 'node:util';
import { MessageBus, systemClock } from './kensho-bus.mjs';
import { WsTransport } from './ws-transport.mjs';
import { loadWs } from './ws-lib.mjs';

const METHOD = 'numbers';
const USAGE = `usage:
  node relay-agent.mjs --url ws://HOST:PORT/ [--token T] --name NAME producer [--chunks N] [--timeout-ms MS]
  node relay-agent.mjs --url ws://HOST:PORT/ [--token T] --name NAME consumer --target PRODUCER [--chunks N] [--timeout-ms MS]
--chunks: integers streamed/expected (default 1000); --timeout-ms: the consumer's whole run, the
producer's connection (default 30000); the token may come from KENSHO_RELAY_TOKEN.
exit: 0 right (consumer) / stopped by a signal (producer); 1 wrong or timed out; 2 bad argument or no connection`;

const startedAt = performance.now();
const since = (t) => Math.round(performance.now() - t);
const say = (line) => process.stderr.write(`relay-agent ${options?.name ?? ''}: ${line}\n`);
const out = (object) => process.stdout.write(`${JSON.stringify(object)}\n`);

class UsageError extends Error {}

function parseArguments(argv) {
  const o = { url: null, token: process.env.KENSHO_RELAY_TOKEN || undefined, name: null, role: null, target: null,
    chunks: 1000, timeoutMs: 30000 };
  const integer = (flag, text, min) => {
    if (!/^\d+$/.test(text ?? '') || Number(text) < min || !Number.isSafeInteger(Number(text))) {
      throw new UsageError(`${flag} takes an integer >= ${min}, not ${JSON.stringify(text ?? null)}`);
    }
    return Number(text);
  };
  const args = [...argv];
  while (args.length > 0) {
    let arg = args.shift();
    let value;
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    if (eq > 0) { value = arg.slice(eq + 1); arg = arg.slice(0, eq); }
    const take = () => {
      if (value !== undefined) return value;
      if (args.length === 0) throw new UsageError(`${arg} needs a value`);
      return args.shift();
    };
    switch (arg) {
      case '-h': case '--help': process.stdout.write(`${USAGE}\n`); process.exit(0); break;
      case '--url': o.url = take(); break;
      case '--token': o.token = take(); break;
      case '--name': o.name = take(); break;
      case '--target': o.target = take(); break;
      case '--chunks': o.chunks = integer(arg, take(), 0); break;
      case '--timeout-ms': o.timeoutMs = integer(arg, take(), 1); break;
      case 'producer': case 'consumer':
        if (o.role !== null) throw new UsageError(`two roles: ${o.role} and ${arg}`);
        o.role = arg;
        break;
      default: throw new UsageError(`unknown argument ${JSON.stringify(arg)}`);
    }
  }
  if (o.role === null) throw new UsageError('say producer or consumer');
  if (o.url === null) throw new UsageError('--url ws://HOST:PORT/ is required');
  let parsed;
  try { parsed = new URL(o.url); } catch { throw new UsageError(`--url ${JSON.stringify(o.url)} is not a URL`); }
  if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') throw new UsageError(`--url must be ws:// or wss://, not ${o.url}`);
  const worker = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/; // KSP-1.1
  if (o.name === null || !worker.test(o.name)) throw new UsageError(`--name must be a worker name (${worker}), not ${JSON.stringify(o.name)}`);
  if (o.role === 'consumer') {
    if (o.target === null || !worker.test(o.target)) throw new UsageError(`consumer needs --target PRODUCER, a worker name, not ${JSON.stringify(o.target)}`);
    if (o.target === o.name) throw new UsageError('--target is this agent itself: a relay never sends a frame back to its sender');
  } else if (o.target !== null) {
    throw new UsageError('--target is for the consumer');
  }
  return o;
}

let options = null;
try {
  options = parseArguments(process.argv.slice(2));
  loadWs(); // named at once when missing
} catch (e) {
  process.stderr.write(`relay-agent: ${e.message}\n${e instanceof UsageError ? USAGE : ''}\n`);
  process.exit(2);
}

const transport = new WsTransport({ url: options.url, token: options.token, log: say });
const bus = new MessageBus({ name: options.name, transport, clock: systemClock,
  streamTimeoutMs: options.timeoutMs + 5000, creditWindow: null });
transport.attach(bus);

/** Resolves true once connected, false at `deadline` (performance.now()) or at once when the relay refuses the token. */
function connected(deadline) {
  return new Promise((resolve) => {
    let poll = null;
    const done = (value) => { clearInterval(poll); resolve(value); };
    transport.ready.then(() => done(true), () => done(false));
    poll = setInterval(() => {
      if (/\b40[13]\b/.test(transport.lastError ?? '')) done(false); // KSP-11.5: retrying will not help
      else if (performance.now() >= deadline) done(false);
    }, 50);
  });
}

const connectionFailure = () => {
  const reason = transport.lastError ?? 'no answer';
  return /\b401\b/.test(reason) ? `the relay ${options.url} refused the token (${reason})`
    : `not connected to the relay ${options.url} within ${options.timeoutMs} ms (${reason})`;
};

/** What the relay said of itself (KSP-11.4), for the log. */
const relayInfo = () => {
  const info = transport.serverInfo;
  return info ? `server_info name=${JSON.stringify(info.name ?? null)} clients=${info.clients ?? '?'}` : 'no server_info';
};

/** Closes the bus and its connection (within about a second), then exits. */
async function finish(code) {
  bus.dispose();
  const closing = transport.closing ?? Promise.resolve();
  await Promise.race([closing, new Promise((resolve) => setTimeout(resolve, 1500).unref())]);
  process.exit(code);
}

// Producer ------------------------------------------------------------------------------------

async function producer() {
  const { chunks } = options;
  let served = 0;
  let cancelled = 0;
  bus.registerStreamMethod(METHOD, (_args, stream) => {
    const started = performance.now();
    let next = 0;
    const report = () => {
      if (stream.cancelled) cancelled += 1; else served += 1;
      out({ event: 'served', name: options.name, streamId: stream.streamId, consumer: stream.consumer,
        chunks: next, ended: !stream.cancelled, ms: since(started) });
    };
    stream.onCancel(() => report());
    const pump = () => {
      while (stream.isActive && next < chunks) {
        if (stream.isFlowControlled && stream.availableCredit === 0) return stream.onCredit(pump); // KSP-FC
        const socket = transport.ws;
        if (socket && socket.bufferedAmount > 1 << 20) return void setTimeout(pump, 5); // let the socket drain
        stream.chunk(next);
        next += 1;
        if (next % 256 === 0 && next < chunks) return void setImmediate(pump); // the connection's frames keep flowing
      }
      if (!stream.isActive) return; // cancelled, or the bus disposed: onCancel reported it
      stream.end({ count: chunks });
      report();
    };
    pump();
  });
  const stop = (signal) => {
    say(`${signal}: stopping`);
    out({ event: 'stopped', name: options.name, signal, served, cancelled, bus: bus.stats(), transport: transport.stats() });
    finish(0);
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  if (!(await connected(startedAt + options.timeoutMs))) {
    say(connectionFailure());
    return finish(2);
  }
  say(`connected to ${options.url} (${relayInfo()}); serving ${METHOD} (${chunks} chunks)`);
  out({ event: 'connected', name: options.name, url: options.url, relay: transport.serverInfo, connectMs: since(startedAt) });
}

// Consumer ------------------------------------------------------------------------------------

async function consumer() {
  const { chunks, target, timeoutMs } = options;
  const deadline = startedAt + timeoutMs;
  const result = { name: options.name, target, url: options.url, method: METHOD, ok: false, chunks: 0, expected: chunks,
    summary: null, attempts: 0, ms: null, connectMs: null, totalMs: null };
  let settled = false;
  const settle = (code, error) => {
    if (settled) return;
    settled = true;
    clearInterval(retry);
    clearTimeout(timer);
    if (error) result.error = error;
    result.ok = code === 0;
    result.totalMs = since(startedAt);
    out(result);
    if (error) say(`FAIL: ${error}`);
    for (const attempt of attempts) attempt.ignored = true; // dispose fails them with BUS_DISPOSED
    finish(code);
  };
  let retry = null;
  let timer = null;
  const attempts = [];
  process.once('SIGTERM', () => settle(1, 'interrupted by SIGTERM'));
  process.once('SIGINT', () => settle(1, 'interrupted by SIGINT'));

  if (!(await connected(deadline))) return settle(2, connectionFailure());
  if (settled) return;
  result.connectMs = since(startedAt);
  say(`connected to ${options.url} (${relayInfo()})`);

  let chosen = null; // the call whose stream is taken; the others are cancelled
  let problem = null; // the first thing wrong with the stream
  const choose = (attempt) => {
    if (chosen !== null) return chosen === attempt;
    chosen = attempt;
    clearInterval(retry);
    say(`${target} answered call ${attempt.n} of ${attempts.length} after ${since(startedAt)} ms`);
    for (const other of attempts) {
      if (other === attempt) continue;
      other.ignored = true;
      bus.cancelStream(other.streamId, 'answered by another call');
    }
    return true;
  };
  const call = () => {
    if (chosen !== null || settled) return;
    const attempt = { n: attempts.length + 1, streamId: null, at: performance.now(), ignored: false };
    attempts.push(attempt);
    result.attempts = attempts.length;
    say(`calling ${METHOD} on ${target} (call ${attempt.n})`);
    attempt.streamId = bus.callAgentStream(target, METHOD, null, {
      onChunk: (data) => {
        if (attempt.ignored || !choose(attempt)) return;
        const index = result.chunks;
        result.chunks += 1;
        if (problem !== null) return;
        if (index >= chunks) problem = `more than ${chunks} chunks: chunk ${index} was ${JSON.stringify(data)}`;
        else if (data !== index) problem = `chunk ${index} was ${JSON.stringify(data)}, expected ${index}`;
      },
      onEnd: (summary) => {
        if (attempt.ignored || !choose(attempt)) return;
        result.summary = summary;
        result.ms = since(attempt.at);
        if (problem === null && result.chunks !== chunks) problem = `${result.chunks} chunks before the end, expected ${chunks}`;
        if (problem === null && !isDeepStrictEqual(summary, { count: chunks })) {
          problem = `end summary ${JSON.stringify(summary)}, expected ${JSON.stringify({ count: chunks })}`;
        }
        settle(problem === null ? 0 : 1, problem);
      },
      onError: (error) => {
        if (attempt.ignored || (chosen !== null && chosen !== attempt)) return;
        result.ms = since(attempt.at);
        settle(1, `${METHOD} on ${target} failed after ${result.chunks} chunks: ${error?.code ?? ''} ${error?.message ?? JSON.stringify(error)}`.replace(/ {2,}/g, ' '));
      },
    });
  };
  call();
  retry = setInterval(call, 1000);
  timer = setTimeout(() => {
    if (chosen === null) {
      settle(1, `no answer from ${target} to ${METHOD} within ${timeoutMs} ms (${attempts.length} calls): is it on the same relay?`);
    } else {
      settle(1, `stream from ${target} incomplete after ${timeoutMs} ms: ${result.chunks} of ${chunks} chunks, no end`
        + (problem ? `; and ${problem}` : ''));
    }
  }, Math.max(0, deadline - performance.now()));
}

(options.role === 'producer' ? producer() : consumer()).catch((e) => {
  say(`internal error: ${e?.stack ?? e}`);
  process.exit(2);
});
