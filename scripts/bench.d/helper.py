#!/usr/bin/env python3
"""Small measuring tools for scripts/bench (standard library only).

  freeport                 print a free TCP port on 127.0.0.1 (outside the ephemeral range)
  probe HOST PORT ...      accept-latency probe: send messages one after another and time
                           "." -> "250" for each; stops after --count or when --stop-file exists
  count FIFO OUTFILE       read smtp-sink -c counters from FIFO; append "messages epoch_seconds"
                           to OUTFILE each time the message count changes (until EOF)
  mem PID OUTFILE          sample the memory of PID and its descendants until SIGTERM, then
                           write "vmhwm_kib rss_peak_kib pss_peak_kib" to OUTFILE
"""

import argparse
import os
import random
import re
import signal
import socket
import sys
import time


def freeport(_args):
    # Ports outside net.ipv4.ip_local_port_range, so the many short client connections of a run
    # never compete with the listeners for a port number.
    for _ in range(200):
        port = random.randint(20000, 30999)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        print(port)
        return 0
    print("no free port found in 20000-30999", file=sys.stderr)
    return 1


class Session:
    """One SMTP connection; reply() reads a whole (multi-line) reply and returns its code."""

    def __init__(self, host, port, timeout):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rfile = self.sock.makefile("rb")
        self.expect(220)
        self.command(b"EHLO probe.example.net", 250)

    def reply(self):
        while True:
            line = self.rfile.readline()
            if len(line) < 4:
                raise ConnectionError(f"short reply {line!r}")
            if line[3:4] != b"-":
                return int(line[:3]), line

    def expect(self, code):
        got, line = self.reply()
        if got != code:
            raise ConnectionError(f"expected {code}, got {line!r}")

    def command(self, cmd, code):
        self.sock.sendall(cmd + b"\r\n")
        self.expect(code)

    def close(self):
        try:
            self.command(b"QUIT", 221)
        except (OSError, ConnectionError):
            pass
        self.sock.close()


def probe(args):
    line = b"x" * 76 + b"\r\n"
    body = (
        b"From: <probe@example.net>\r\nTo: <probe@example.com>\r\nSubject: latency probe\r\n\r\n"
        + line * max(1, args.size // len(line))
    )
    samples, errors, session = [], 0, None
    while len(samples) < args.count and not os.path.exists(args.stop_file):
        try:
            if session is None:
                session = Session(args.host, args.port, args.timeout)
            session.command(b"MAIL FROM:<probe@example.net>", 250)
            session.command(b"RCPT TO:<probe@example.com>", 250)
            session.command(b"DATA", 354)
            session.sock.sendall(body)
            start = time.monotonic()
            session.sock.sendall(b".\r\n")
            session.expect(250)
            samples.append(time.monotonic() - start)
            if not args.keep:
                session.close()
                session = None
        except (OSError, ConnectionError) as err:
            errors += 1
            print(f"probe: {err}", file=sys.stderr)
            if session is not None:
                session.sock.close()
                session = None
            if errors > 20:
                break
    if session is not None:
        session.close()
    samples.sort()

    def pct(p):
        if not samples:
            return float("nan")
        return samples[min(len(samples) - 1, int(p / 100 * len(samples)))] * 1000

    with open(args.out, "w") as out:
        out.write(f"{len(samples)} {errors} {pct(50):.1f} {pct(99):.1f} {pct(100):.1f}\n")
    return 0


def count(args):
    # smtp-sink -c rewrites "sess=N quit=N mesg=N\r" after every message and session, unbuffered,
    # so reading the pipe timestamps each arrival without polling.
    last, pending = 0, b""
    with open(args.fifo, "rb", buffering=0) as sink, open(args.out, "w") as out:
        out.write(f"0 {time.time():.6f}\n")
        out.flush()
        while chunk := sink.read(65536):
            now = time.time()
            *done, pending = (pending + chunk).split(b"\r")
            for counters in done:
                m = re.search(rb"mesg=(\d+)", counters)
                if m and int(m.group(1)) != last:
                    last = int(m.group(1))
                    out.write(f"{last} {now:.6f}\n")
            out.flush()
    return 0


def tree(root):
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(children.get(pid, []))
    return pids


def field(path, name):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def mem(args):
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    rss_peak = pss_peak = 0
    hwm = {}
    while not stop and os.path.exists(f"/proc/{args.pid}"):
        pids = tree(args.pid)
        rss = pss = 0
        for pid in pids:
            rss += field(f"/proc/{pid}/status", "VmRSS")
            pss += field(f"/proc/{pid}/smaps_rollup", "Pss")
            hwm[pid] = max(hwm.get(pid, 0), field(f"/proc/{pid}/status", "VmHWM"))
        rss_peak, pss_peak = max(rss_peak, rss), max(pss_peak, pss)
        time.sleep(args.interval)
    # VmHWM summed over the processes alive at the end (each counts its shared pages once).
    alive = tree(args.pid) if os.path.exists(f"/proc/{args.pid}") else []
    vmhwm = sum(max(hwm.get(p, 0), field(f"/proc/{p}/status", "VmHWM")) for p in alive)
    with open(args.out, "w") as out:
        out.write(f"{vmhwm} {rss_peak} {pss_peak}\n")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("freeport").set_defaults(func=freeport)
    p = sub.add_parser("probe")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--count", type=int, default=300)
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--keep", action="store_true", help="reuse one connection (like smtp-source -d)")
    p.add_argument("--stop-file", required=True)
    p.add_argument("--timeout", type=float, default=60)
    p.add_argument("--out", required=True)
    p.set_defaults(func=probe)
    c = sub.add_parser("count")
    c.add_argument("fifo")
    c.add_argument("out")
    c.set_defaults(func=count)
    m = sub.add_parser("mem")
    m.add_argument("pid", type=int)
    m.add_argument("out")
    m.add_argument("--interval", type=float, default=0.2)
    m.set_defaults(func=mem)
    args = parser.parse_args()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
