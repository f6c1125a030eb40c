#!/usr/bin/env python3
"""A kensho-adapter/1 process for the harness's pipelining tests (PipelinedAdapterTests).

    pipeline-adapter.py MODE

batch      holds operations and answers them only three at a time, in order: a harness that
           waits for each ack before writing the next operation never gets one
reorder    holds two operations and answers the second first
stray      after the ack of hello, acknowledges an id nobody sent
unprompted writes a log event 100 ms after each ack, between operations
silent     answers hello, then reads operations and never answers them
heartbeat  answers hello, then writes a log event every 50 ms and never answers an operation
deaf       answers hello, then stops reading its input (and answers nothing), alive
escape     starts a child in a session of its own that keeps stdout open for 10 s, then
           behaves (answers everything, exits on shutdown)
"""
import json
import subprocess
import sys
import threading
import time

mode = sys.argv[1]
lock = threading.Lock()


def write(obj):
    with lock:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


def ack(op):
    write({"event": "ack", "id": op["id"]})


def later(message):
    time.sleep(0.1)
    write({"event": "log", "message": message})


held = []
for line in sys.stdin:
    op = json.loads(line)
    name = op["op"]
    if name == "hello":
        write({"event": "ack", "id": op["id"], "protocol": "kensho-adapter/1",
               "implementation": {"name": "pipeline-fixture", "version": "1"}, "capabilities": ["real_time"]})
        if mode == "heartbeat":
            def beat():
                while True:
                    time.sleep(0.05)
                    write({"event": "log", "message": "alive"})
            threading.Thread(target=beat, daemon=True).start()
        if mode == "deaf":
            time.sleep(60)
        if mode == "escape":
            subprocess.Popen(["sleep", "10"], start_new_session=True)
        if mode == "stray":
            write({"event": "ack", "id": 99})
        continue
    if name == "shutdown":
        ack(op)
        break
    if mode == "batch":
        held.append(op)
        if len(held) == 3:
            for h in held:
                ack(h)
            held = []
    elif mode == "reorder":
        held.append(op)
        if len(held) == 2:
            ack(held[1])
            ack(held[0])
            held = []
    elif mode == "unprompted":
        ack(op)
        threading.Thread(target=later, args=(f"after {name} {op['id']}",), daemon=True).start()
    elif mode in ("silent", "heartbeat"):
        pass
    else:
        ack(op)
