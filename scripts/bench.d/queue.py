"""Helpers of scripts/bench-queue: every timed step and every check it makes.

  stats SOCK                    messages in the queue (control socket, no envelope read)
  connect HOST:PORT             exit 0 when a TCP connection succeeds
  rate N T0 T1                  N / (T1 - T0), rounded
  secs T0 T1                    T1 - T0 in seconds, two decimals
  scrape HOST:PORT DEST N       five GET /metrics; checks DEST's gauge is N; median and max
  list EDGEMX CONFIG N          times `edgemx queue list`; checks it lists at least N
  first HOST:PORT SOCK N T0     sends one message as soon as the gateway answers; prints
                                seconds from T0 to its 250 and to its delivery (the queue
                                back to N messages)
  sinkcount FILE                the last mesg= counter smtp-sink -c wrote
"""

import json
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.request


def stats(sock):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock)
    s.sendall(b'{"op":"stats"}\n')
    reply = json.loads(s.makefile().readline())
    s.close()
    return reply["data"]["messages"]


def split(addr):
    host, port = addr.rsplit(":", 1)
    return host, int(port)


def connect(addr):
    try:
        socket.create_connection(split(addr), timeout=1).close()
        return 0
    except OSError:
        return 1


def scrape(addr, dest, n):
    pattern = re.compile(
        r'^edgemx_queue_destination_messages\{destination="%s"\} (\S+)$' % re.escape(dest),
        re.M,
    )
    times = []
    for _ in range(5):
        t = time.monotonic()
        with urllib.request.urlopen(f"http://{addr}/metrics", timeout=120) as r:
            body = r.read().decode()
        times.append(time.monotonic() - t)
        m = pattern.search(body)
        if not m or float(m.group(1)) < n:
            sys.exit(f"scrape: {dest} gauge is {m and m.group(1)}, expected at least {n}")
    ms = [t * 1000 for t in times]
    return f"{statistics.median(ms):.1f} ms; {max(ms):.1f} ms"


def listing(edgemx, config, n):
    t = time.monotonic()
    out = subprocess.run(
        [edgemx, "queue", "list", "--config", config],
        check=True,
        stdout=subprocess.PIPE,
    ).stdout
    secs = time.monotonic() - t
    lines = out.count(b"\n")
    if lines < n:
        sys.exit(f"queue list: {lines} lines, expected at least {n}")
    return f"{secs:.1f} s ({len(out) / 1048576:.0f} MiB of output)"


def reply(f):
    while True:
        line = f.readline()
        if not line:
            raise OSError("connection closed")
        if line[3:4] != b"-":
            return line


def send_one(addr):
    s = socket.create_connection(split(addr), timeout=60)
    f = s.makefile("rb")
    steps = [
        None,
        b"EHLO probe.bench.test\r\n",
        b"MAIL FROM:<probe@sender.test>\r\n",
        b"RCPT TO:<user@example.com>\r\n",
        b"DATA\r\n",
        b"Subject: after restart\r\n\r\nfirst message after the restart\r\n.\r\n",
    ]
    for step in steps:
        if step:
            s.sendall(step)
        line = reply(f)
        if step and step.startswith(b"Subject") and not line.startswith(b"250"):
            raise OSError(line.decode().strip())
        if not line[:1] in (b"2", b"3"):
            raise OSError(line.decode().strip())
    s.sendall(b"QUIT\r\n")
    s.close()


def first(addr, sock, n, t0):
    deadline = time.time() + 600
    while True:
        try:
            send_one(addr)
            break
        except OSError:
            if time.time() > deadline:
                sys.exit("first: the gateway never accepted a message")
            time.sleep(0.01)
    accepted = time.time()
    while stats(sock) > n:
        if time.time() > deadline:
            sys.exit("first: the message after the restart was never delivered")
        time.sleep(0.01)
    delivered = time.time()
    return f"{accepted - t0:.2f} {delivered - t0:.2f}"


def sinkcount(path):
    with open(path, "rb") as f:
        f.seek(0, 2)
        f.seek(max(0, f.tell() - 4096))
        counts = re.findall(rb"mesg=(\d+)", f.read())
    return int(counts[-1]) if counts else 0


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "stats":
        print(stats(args[0]))
    elif cmd == "connect":
        sys.exit(connect(args[0]))
    elif cmd == "rate":
        print(f"{int(args[0]) / (float(args[2]) - float(args[1])):.0f}")
    elif cmd == "secs":
        print(f"{float(args[1]) - float(args[0]):.2f}")
    elif cmd == "scrape":
        print(scrape(args[0], args[1], int(args[2])))
    elif cmd == "list":
        print(listing(args[0], args[1], int(args[2])))
    elif cmd == "first":
        print(first(args[0], args[1], int(args[2]), float(args[3])))
    elif cmd == "sinkcount":
        print(sinkcount(args[0]))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
