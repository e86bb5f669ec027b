#!/usr/bin/env python3
"""milterclient.py - a small MTA side of the milter protocol (version 6),
for the tests miltertest cannot drive: arguments over 1,000 bytes (miltertest
refuses them, and its mt.header overflows its stack past ~2,000), the SMTP
reply text of a refusal (miltertest only shows the reply type), and hundreds
of concurrent sessions (tests/e2e/load.sh).

Used as a module:
    m = Milter("unix:/path/milter.sock")      # or "inet:PORT@127.0.0.1";
                                                # no_reply=True offers SMFIP_NR_* like Postfix
    m.start()                                   # negotiate, connect, helo
    m.mail("<s@example.net>", qid="Q1")         # -> Reply(kind, text)
    r = m.rcpt("<a@example.org>")               # r.kind: continue|reject|tempfail|reply|...
    r.code                                      # "550" for a reply, None otherwise
    m.message([("Subject", "x")], b"body\\r\\n")  # headers, body, eom -> (Reply, actions)
    m.close()
Every read has a timeout; a milter that does not answer raises MilterError.
Must not: pretend to be a full MTA (no DATA/UNKNOWN steps: the milter
declines them at negotiation).
"""
import socket
import struct

SMFI_VERSION = 6
ACTIONS_ALL = 0x1FF
# "no reply" protocol flags (SMFIP_NR_*) per step, as Postfix offers them
NR = {"connect": 0x1000, "helo": 0x2000, "mail": 0x4000, "rcpt": 0x8000,
      "header": 0x80, "eoh": 0x40000, "body": 0x80000}
NR_ALL = sum(NR.values())
REPLY_KINDS = {b"c": "continue", b"a": "accept", b"r": "reject", b"t": "tempfail",
               b"d": "discard", b"y": "reply", b"s": "skip"}
# end-of-message modification requests
MODS = {b"h": "addheader", b"i": "insheader", b"m": "chgheader", b"+": "addrcpt",
        b"-": "delrcpt", b"2": "addrcpt_par", b"b": "replbody", b"q": "quarantine",
        b"e": "chgfrom", b"p": "progress"}


class MilterError(Exception):
    pass


class Reply:
    def __init__(self, kind, text=b""):
        self.kind = kind
        self.text = text.rstrip(b"\0").decode("latin-1")
        self.code = self.text[:3] if kind == "reply" else None

    def __repr__(self):
        return "%s %s" % (self.kind, self.text) if self.text else self.kind


class Milter:
    def __init__(self, spec, timeout=30.0, no_reply=False):
        self.offer = NR_ALL if no_reply else 0
        self.noreply = 0
        if spec.startswith("unix:") or spec.startswith("local:"):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            addr = spec.split(":", 1)[1]
        else:
            port, _, host = spec.split(":", 1)[1].partition("@")
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            addr = (host or "127.0.0.1", int(port))
        self.sock.settimeout(timeout)
        self.sock.connect(addr)
        self.buf = b""

    # -- wire
    def send(self, cmd, data=b""):
        self.sock.sendall(struct.pack(">I", len(data) + 1) + cmd + data)

    def _recv_exact(self, n):
        while len(self.buf) < n:
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise MilterError("timeout waiting for the milter")
            if not chunk:
                raise MilterError("the milter closed the connection")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read(self):
        (n,) = struct.unpack(">I", self._recv_exact(4))
        if n < 1 or n > 1 << 20:
            raise MilterError("bad packet length %d" % n)
        body = self._recv_exact(n)
        return body[:1], body[1:]

    def reply(self, step=None):
        """The final reply to a command, skipping progress packets;
        "noreply" for a step the milter negotiated not to answer."""
        if step and self.noreply & NR[step]:
            return Reply("noreply")
        while True:
            cmd, data = self.read()
            if cmd == b"p":
                continue
            if cmd not in REPLY_KINDS:
                raise MilterError("unexpected packet %r" % cmd)
            return Reply(REPLY_KINDS[cmd], data)

    @staticmethod
    def _args(args):
        out = b""
        for a in args:
            out += (a.encode("utf-8", "surrogateescape") if isinstance(a, str) else a) + b"\0"
        return out

    # -- steps
    def negotiate(self):
        self.send(b"O", struct.pack(">III", SMFI_VERSION, ACTIONS_ALL, self.offer))
        cmd, data = self.read()
        if cmd != b"O" or len(data) < 12:
            raise MilterError("negotiation failed: %r" % cmd)
        self.version, self.actions, self.protocol = struct.unpack(">III", data[:12])
        self.noreply = self.protocol & self.offer

    def macro(self, step, **values):
        data = step
        for k, v in values.items():
            data += self._args([k if len(k) == 1 else "{%s}" % k, v])
        self.send(b"D", data)

    def connect(self, host="client.example.net", ip="192.0.2.7", port=4567):
        self.send(b"C", self._args([host]) + b"4" + struct.pack(">H", port) + self._args([ip]))
        return self.reply("connect")

    def helo(self, name="client.example.net"):
        self.send(b"H", self._args([name]))
        return self.reply("helo")

    def start(self, **kw):
        self.negotiate()
        for r in (self.connect(**kw), self.helo()):
            if r.kind not in ("continue", "noreply"):
                raise MilterError("connect/helo refused: %r" % r)

    def mail(self, *args, qid=None):
        if qid:
            self.macro(b"M", i=qid)
        self.send(b"M", self._args(args))
        return self.reply("mail")

    def rcpt(self, *args, qid=None):
        if qid:
            self.macro(b"R", i=qid)
        self.send(b"R", self._args(args))
        return self.reply("rcpt")

    def header(self, name, value):
        self.send(b"L", self._args([name, value]))
        return self.reply("header")

    def eoh(self):
        self.send(b"N")
        return self.reply("eoh")

    def body(self, data):
        r = Reply("continue")
        for i in range(0, len(data), 65535):
            self.send(b"B", data[i:i + 65535])
            r = self.reply("body")
            if r.kind not in ("continue", "noreply"):
                return r
        return r

    def eom(self):
        """End of message: (final Reply, [(modification, data), ...])."""
        self.send(b"E")
        mods = []
        while True:
            cmd, data = self.read()
            if cmd in MODS:
                if cmd != b"p":
                    mods.append((MODS[cmd], data))
                continue
            if cmd not in REPLY_KINDS:
                raise MilterError("unexpected packet %r at eom" % cmd)
            return Reply(REPLY_KINDS[cmd], data), mods

    def message(self, headers, body):
        for name, value in headers:
            r = self.header(name, value)
            if r.kind not in ("continue", "noreply"):
                return r, []
        r = self.eoh()
        if r.kind not in ("continue", "noreply"):
            return r, []
        r = self.body(body)
        if r.kind not in ("continue", "noreply"):
            return r, []
        return self.eom()

    def abort(self):
        self.send(b"A")

    def close(self):
        try:
            self.send(b"Q")
        except OSError:
            pass
        self.sock.close()
