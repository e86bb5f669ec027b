#!/usr/bin/env python3
"""fakedns.py - a tiny DNS responder over UDP for tests/daemon/dns.sh: some
names answered at once, some late, some never, every other name NXDOMAIN.

Usage: fakedns.py [--listen ADDR] [--port N] --log FILE
                  [--answer NAME=IP]... [--slow NAME=IP@SECONDS]... [--silent NAME]...

Prints "READY" on stdout once bound (default 127.0.0.1:53, which needs
root: dns.sh runs it in a private network namespace). Appends one line per
query received ("QUERY name A") and per answer sent ("ANSWER name A"), so
a test can count what the resolver asked and wait for a late answer.
A names get the IP with a TTL of 300 s; AAAA and other types of a known
name get an empty answer (NOERROR), after the same delay.
Must not: forward anything, listen beyond the address given, or be used
as a real resolver.
"""
import argparse
import os
import signal
import socket
import struct
import sys
import threading

LOCK = threading.Lock()
TYPES = {1: "A", 28: "AAAA"}


def log(path, line):
    with LOCK, open(path, "a") as f:
        f.write(line + "\n")


def parse_question(data):
    """(id, rd flag, qname, qtype, end of question) or None for junk."""
    if len(data) < 12:
        return None
    qid, flags, qdcount = struct.unpack("!HHH", data[:6])
    if qdcount != 1 or flags & 0x8000:
        return None
    labels, pos = [], 12
    while pos < len(data) and data[pos] != 0:
        n = data[pos]
        if n & 0xC0:
            return None
        labels.append(data[pos + 1:pos + 1 + n].decode("ascii", "replace"))
        pos += 1 + n
    if pos + 5 > len(data):
        return None
    qtype = struct.unpack("!H", data[pos + 1:pos + 3])[0]
    return qid, flags & 0x0100, ".".join(labels).lower(), qtype, pos + 5


def reply(data, q, ip):
    """A response to query data: ip for an A question, NODATA otherwise,
    NXDOMAIN when ip is False."""
    qid, rd, _, qtype, end = q
    rcode = 3 if ip is False else 0
    answers = b""
    if ip and qtype == 1:
        answers = struct.pack("!HHHIH", 0xC00C, 1, 1, 300, 4) + socket.inet_aton(ip)
    flags = 0x8000 | 0x0400 | rd | 0x0080 | rcode   # QR AA RD RA
    header = struct.pack("!HHHHHH", qid, flags, 1, 1 if answers else 0, 0, 0)
    return header + data[12:end] + answers


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=53)
    ap.add_argument("--log", required=True)
    ap.add_argument("--answer", action="append", default=[])
    ap.add_argument("--slow", action="append", default=[])
    ap.add_argument("--silent", action="append", default=[])
    args = ap.parse_args()
    zone = {}   # name -> (ip, delay) ; ip None = never answered
    for a in args.answer:
        name, ip = a.split("=", 1)
        zone[name.lower()] = (ip, 0.0)
    for a in args.slow:
        name, rest = a.split("=", 1)
        ip, delay = rest.split("@", 1)
        zone[name.lower()] = (ip, float(delay))
    for name in args.silent:
        zone[name.lower()] = (None, 0.0)

    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((args.listen, args.port))
    print("READY", flush=True)

    def send(data, q, ip, peer):
        sock.sendto(reply(data, q, ip), peer)
        log(args.log, "ANSWER %s %s" % (q[2], TYPES.get(q[3], q[3])))

    while True:
        data, peer = sock.recvfrom(4096)
        q = parse_question(data)
        if not q:
            continue
        name, qtype = q[2], q[3]
        log(args.log, "QUERY %s %s" % (name, TYPES.get(qtype, qtype)))
        ip, delay = zone.get(name, (False, 0.0))
        if ip is None:
            continue   # a resolver that never answers
        if delay > 0:
            threading.Timer(delay, send, (data, q, ip, peer)).start()
        else:
            send(data, q, ip, peer)


if __name__ == "__main__":
    sys.exit(main())
