#!/usr/bin/env python3
"""A hostile kensho-adapter/1 implementation, for the harness's own tests (issue #14).

It is a proxy: it starts a real adapter (the words after `--`) as its child, relays every
operation to it and every event back, and misbehaves in one chosen way at one chosen moment:

    python3 hostile-adapter.py --misbehave MODE [--on OP] [--value TEXT] [--delay S]
        [--victim WORKER] [--tag TAG] -- node Adapters/node/adapter.mjs

The child runs in the proxy's process group, so a harness that kills only the proxy leaves it
behind; with a helper (`ignore-shutdown`) there is a grandchild that ignores EOF and SIGTERM too.
Every process it starts carries KENSHO_HOSTILE_TAG=TAG in its environment and the proxy has
TAG in its command line, so that a test can look for leftovers in /proc.

MODE (OP is the operation at whose first occurrence it happens; defaults shown):
  stdout-flood     [deliver] valid events on stdout, forever, never the ack
  stderr-flood     [deliver] text on stderr, forever, never the ack
  close-stdout     [deliver] closes stdout, stays alive (ignores EOF and SIGTERM)
  ignore-shutdown  acks `shutdown`, then neither exits nor lets its helper exit (EOF, SIGTERM ignored)
  hang             [call]    never answers (ignores EOF and SIGTERM)
  garbage          [deliver] a line that is not JSON
  huge             [deliver] a line of 70 MiB
  wrong-version    the hello ack names kensho-adapter/0
  crash            [deliver] exits with status 3
  slow             [register] every operation from OP on answers after --delay seconds
  timer            [call]    the ack's nextTimerMs is the raw JSON text --value (1e300, NaN, ...)
  sent             [chunks]  the ack's `sent` is --value (default: the batch's size + 5)
  impersonate      its first `send` event names --victim as the message's sourceWorker
  foreign-callback after a `handler` event, an `end` callback for --victim on that stream
  stats-fail       [stats]   the ack carries an error
  stats-hang       [stats]   never answers
  wrong-id         [register] acks with the wrong id
  none             relays faithfully
"""

import json
import os
import signal
import subprocess
import sys
import time

DEFAULT_ON = {
    "stdout-flood": "deliver",
    "stderr-flood": "deliver",
    "close-stdout": "deliver",
    "hang": "call",
    "garbage": "deliver",
    "huge": "deliver",
    "crash": "deliver",
    "slow": "register",
    "timer": "call",
    "sent": "chunks",
    "stats-fail": "stats",
    "stats-hang": "stats",
    "wrong-id": "register",
}


def parse_args(argv):
    opts = {"misbehave": "none", "on": None, "value": None, "delay": 1.0, "victim": None, "tag": None}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            return opts, argv[i + 1 :]
        if a.startswith("--") and a[2:] in opts and i + 1 < len(argv):
            opts[a[2:]] = argv[i + 1]
            i += 2
            continue
        sys.stderr.write(f"hostile-adapter: unknown argument {a}\n")
        sys.exit(2)
    sys.stderr.write("hostile-adapter: missing `-- INNER COMMAND`\n")
    sys.exit(2)


opts, inner = parse_args(sys.argv[1:])
mode = opts["misbehave"]
trigger = opts["on"] or DEFAULT_ON.get(mode)
if opts["tag"]:
    os.environ["KENSHO_HOSTILE_TAG"] = opts["tag"]

out = sys.stdout.buffer
child = subprocess.Popen(inner, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
child_out = child.stdout
hosted = set()
seen = {}
fired = False


def ignore_signals():
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(s, signal.SIG_IGN)


def linger():
    """Stays alive whatever happens: EOF, SIGTERM, a closed pipe."""
    ignore_signals()
    while True:
        time.sleep(3600)


def start_helper():
    """A grandchild of the harness that ignores EOF and SIGTERM: only a group kill ends it."""
    code = (
        "import signal, time\n"
        "for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP): signal.signal(s, signal.SIG_IGN)\n"
        "while True: time.sleep(3600)\n"
    )
    subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL)


def write(data):
    out.write(data)
    out.flush()


def raw_json(obj, key, raw):
    """obj as JSON with obj[key] written as the raw text `raw` (which may not be valid JSON)."""
    obj = dict(obj)
    obj[key] = "__HOSTILE_RAW__"
    return json.dumps(obj).replace('"__HOSTILE_RAW__"', raw)


def flood_stdout(worker):
    line = json.dumps(
        {
            "event": "send",
            "worker": worker,
            "message": {
                "type": "stream_chunk",
                "messageId": "flood-message",
                "streamId": "flood-stream",
                "sourceWorker": worker,
                "targetWorker": worker,
                "payload": "flood " * 8,
                "metadata": {"seq": 0},
            },
        }
    ).encode() + b"\n"
    block = line * (65536 // len(line) + 1)
    while True:
        out.write(block)


def flood_stderr():
    block = (b"stderr flood: the adapter writes this line forever\n") * 1300
    err = sys.stderr.buffer
    while True:
        err.write(block)


def relay(op):
    """Sends op to the child and yields its events, then its ack (parsed)."""
    child.stdin.write(json.dumps(op).encode() + b"\n")
    child.stdin.flush()
    while True:
        line = child_out.readline()
        if not line:
            sys.stderr.write("hostile-adapter: the inner adapter closed its output\n")
            sys.exit(4)
        if not line.strip():
            continue
        event = json.loads(line)
        last = event.get("event") == "ack" and event.get("id") == op.get("id")
        yield event
        if last:
            return


def handle(op):
    global fired
    name = op.get("op")
    seen[name] = seen.get(name, 0) + 1
    now = name == trigger and seen[name] == 1
    worker = op.get("worker") or "nobody"
    if name == "configure":
        hosted.update(op.get("workers") or [])

    if now:
        if mode == "stdout-flood":
            flood_stdout(worker)
        if mode == "stderr-flood":
            flood_stderr()
        if mode == "close-stdout":
            out.flush()
            os.close(1)
            ignore_signals()
            while sys.stdin.buffer.readline():
                pass
            linger()
        if mode in ("hang", "stats-hang"):
            linger()
        if mode == "crash":
            os._exit(3)
        if mode == "garbage":
            write(b"this is not JSON\n")
        if mode == "huge":
            write(b'"' + b"x" * (70 << 20) + b'"\n')
    if mode == "slow" and trigger in seen and name not in ("hello", "shutdown"):
        time.sleep(float(opts["delay"]))

    lines = []
    for event in relay(op):
        kind = event.get("event")
        if kind == "ack":
            if name == "hello" and mode == "wrong-version":
                event["protocol"] = "kensho-adapter/0"
            if now and mode == "timer":
                lines.append(raw_json(event, "nextTimerMs", opts["value"] or "1e300"))
                continue
            if now and mode == "sent":
                event["sent"] = int(opts["value"]) if opts["value"] else len(op.get("data") or []) + 5
            if now and mode == "stats-fail":
                event = {"event": "ack", "id": event.get("id"), "error": "stats exploded", "nextTimerMs": None}
            if now and mode == "wrong-id":
                event["id"] = event.get("id", 0) + 1000
        elif kind == "send" and mode == "impersonate" and not fired:
            victim = opts["victim"]
            message = event.get("message") or {}
            if victim and victim not in hosted and message.get("sourceWorker") in hosted:
                message["sourceWorker"] = victim
                fired = True
        lines.append(json.dumps(event))
        if kind == "handler" and mode == "foreign-callback" and not fired:
            victim = opts["victim"]
            if victim and victim not in hosted:
                forged = {"event": "end", "worker": victim, "streamId": event.get("streamId"), "summary": {"count": 5}}
                lines.append(json.dumps(forged))
                fired = True
    write(("\n".join(lines) + "\n").encode())

    if name == "shutdown":
        if mode == "ignore-shutdown":
            start_helper()
            linger()
        child.stdin.close()
        child.wait()
        sys.exit(0)


for raw in sys.stdin.buffer:
    if not raw.strip():
        continue
    handle(json.loads(raw))
if mode == "ignore-shutdown":
    start_helper()
    linger()
