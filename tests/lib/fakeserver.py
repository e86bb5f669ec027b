#!/usr/bin/env python3
"""fakeserver.py - a scripted SMTP/LMTP server for faults a real server
cannot be made to produce (tests/unit/test_pool.c drives it).

Usage: fakeserver.py [--port N | --unix PATH] [--log FILE] [--status FILE] [--data FILE]
                     [--delay S] [--idle-close S] [--auth USER:PASS]
                     [--mechs "PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256"]
                     [--proto smtp|imap] [--imap-caps "AUTH=PLAIN SASL-IR"]
                     [--scram-final good|missing|wrong] [--smtputf8] [--bare-cr-eol] SCENARIO

--port 0 (the default) picks a free port; the port is printed on stdout as
"PORT <n>". Every command line received is appended to --log (one per line,
AUTH payloads included: this is a test tool), every DATA payload (as sent on
the wire, dot-stuffed) to --data, and --status holds "max=<most concurrent
sessions> total=<sessions> active=<now> pipelined=<RCPTs that came in one
read with an earlier RCPT: the client did not wait for its reply>".

Scenarios:
  normal        EHLO/LHLO with PIPELINING; RCPT: local part "ok*" 250, else 550 5.1.1;
                any address at a domain starting with "catchall" 250 (a catch-all);
                local part "x-slow*" answered after --delay seconds, "x-temp*"
                451 4.2.1, "x-hang*" never answered (nor anything after it)
  nostarttls    same as normal (it never offers STARTTLS)
  garbage       the greeting is not an SMTP reply
  hang          accepts and never says anything
  reset         greets, then resets the connection on the first command
  bigline       sends 1 MB without a line end, then hangs
  slow          every reply (greeting included) after --delay seconds
  tempfail-rcpt RCPT answers 451 4.3.0
  tempfail-data DATA answers 451 4.3.0
  hang-data     never answers after the end of data
  manylines     the EHLO reply has 150 lines
--proto imap serves IMAP instead (CAPABILITY from --imap-caps, LOGIN,
AUTHENTICATE PLAIN, NOOP, LOGOUT; faults garbage, hang, bigline, slow).
With LHLO, the end of data gets one reply per accepted recipient: local
part "oktemp*" 452 4.2.2, "okperm*" 552 5.2.2, others 250 2.0.0.
VRFY/EXPN: "ok*" 250 (EXPN: two members), "amb*" 252, others 550 5.1.1.
--scram-final: "missing" answers 235 right after the client's proof
(whatever it is) without sending its signature, "wrong" sends a wrong
signature (v=); both are servers that do not know the password.
--smtputf8 offers SMTPUTF8 (RFC 6531). Either way a RCPT/VRFY/EXPN of a
non-ASCII address outside an SMTPUTF8 transaction gets 553 5.6.7.
--bare-cr-eol reads a lone CR as a line end too (a lenient receiver, the
kind SMTP smuggling with "\r.\r" targets).
The stdlib only; stops on SIGTERM.
"""
import argparse
import base64
import hashlib
import hmac
import os
import signal
import socket
import socketserver
import struct
import sys
import threading
import time

ARGS = None
LOCK = threading.Lock()
STATE = {"active": 0, "max": 0, "total": 0, "pipelined": 0}


def write_status():
    if not ARGS.status:
        return
    tmp = ARGS.status + ".tmp"
    with open(tmp, "w") as f:
        f.write("max=%d total=%d active=%d pipelined=%d\n"
                % (STATE["max"], STATE["total"], STATE["active"], STATE["pipelined"]))
    os.replace(tmp, ARGS.status)


def session_change(delta):
    with LOCK:
        STATE["active"] += delta
        if delta > 0:
            STATE["total"] += 1
        STATE["max"] = max(STATE["max"], STATE["active"])
        write_status()


def log_line(line):
    if not ARGS.log:
        return
    with LOCK:
        with open(ARGS.log, "ab") as f:
            f.write(line + b"\n")


def log_data(rcpts, data):
    if not ARGS.data:
        return
    with LOCK:
        with open(ARGS.data, "ab") as f:
            f.write(b"=== " + b" ".join(rcpts) + b"\n" + data + b"=== end\n")


def local_part(addr):
    a = addr.strip().lstrip(b"<").rstrip(b">")
    return a.split(b"@")[0].lower()


class Session(socketserver.BaseRequestHandler):
    def setup(self):
        self.sock = self.request
        if self.sock.family != socket.AF_UNIX:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.lmtp = False
        self.mail = False
        self.utf8 = False
        self.rcpts = []
        self.counted = True
        self.hung = False
        self.chunk = 0          # recv() calls so far
        self.line_chunk = 0     # the recv() that completed the current line
        self.rcpt_chunk = -1    # the same for the last RCPT
        session_change(+1)

    def finish(self):
        if self.counted:
            session_change(-1)

    # -- I/O
    def send(self, text):
        if ARGS.scenario == "slow":
            time.sleep(ARGS.delay)
        self.sock.sendall(text.encode() if isinstance(text, str) else text)

    def reply(self, *lines):
        out = ""
        for i, l in enumerate(lines):
            sep = " " if i == len(lines) - 1 else "-"
            out += l[:3] + sep + l[4:] + "\r\n"
        self.send(out)

    def eol(self):
        """(index, length) of the first line end in buf, or None."""
        lf = self.buf.find(b"\n")
        if ARGS.bare_cr_eol:
            cr = self.buf.find(b"\r")
            if cr != -1 and (lf == -1 or cr < lf):
                if cr + 1 == len(self.buf):
                    return None     # CRLF or a lone CR: the next byte tells
                return (cr, 2 if self.buf[cr + 1:cr + 2] == b"\n" else 1)
        return None if lf == -1 else (lf, 1)

    def readline(self):
        while self.eol() is None:
            if ARGS.idle_close:
                self.sock.settimeout(ARGS.idle_close)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                self.sock.sendall(b"421 4.4.2 fake: idle timeout\r\n")
                return None
            if not chunk:
                return None
            self.buf += chunk
            self.chunk += 1
        self.line_chunk = self.chunk
        i, n = self.eol()
        line, self.buf = self.buf[:i], self.buf[i + n:]
        return line.rstrip(b"\r")

    def end_session(self):
        """Counts the session as gone before the last reply reaches the client."""
        if self.counted:
            self.counted = False
            session_change(-1)

    # -- scenarios that never get to the dialogue
    def handle(self):
        sc = ARGS.scenario
        if sc == "hang":
            while self.readline() is not None:
                pass
            return
        if sc == "garbage":
            self.send("HELLO I am not an SMTP server\r\n")
        elif sc == "bigline":
            self.send(b"220 " + b"x" * (1024 * 1024))
            while self.readline() is not None:
                pass
            return
        else:
            self.send("220 fake.test ESMTP fakeserver\r\n")
        self.dialogue()

    def ehlo_lines(self):
        lines = ["250 fake.test", "250 PIPELINING", "250 SIZE 10240000",
                 "250 ENHANCEDSTATUSCODES", "250 8BITMIME"]
        if ARGS.auth:
            lines.append("250 AUTH " + ARGS.mechs)
        if ARGS.smtputf8:
            lines.append("250 SMTPUTF8")
        if ARGS.scenario == "manylines":
            lines += ["250 X-FILLER-%d" % i for i in range(150)]
        return lines

    def dialogue(self):
        while True:
            line = self.readline()
            if line is None:
                return
            log_line(line)
            if self.hung:
                continue        # "x-hang": no reply ever again
            if ARGS.scenario == "reset":
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            verb = line.split(b" ", 1)[0].split(b":", 1)[0].upper()
            handler = getattr(self, "cmd_" + verb.decode("latin-1").replace("-", "_"), None)
            if handler is None:
                self.reply("502 5.5.2 Error: command not recognized")
                continue
            if handler(line) == "quit":
                return

    # -- commands
    def cmd_EHLO(self, line):
        self.lmtp = False
        self.reply(*self.ehlo_lines())

    def cmd_LHLO(self, line):
        self.lmtp = True
        self.reply(*self.ehlo_lines())

    def cmd_HELO(self, line):
        self.reply("250 fake.test")

    def cmd_NOOP(self, line):
        self.reply("250 2.0.0 Ok")

    def cmd_RSET(self, line):
        self.mail = False
        self.rcpts = []
        self.reply("250 2.0.0 Ok")

    def cmd_QUIT(self, line):
        self.end_session()
        self.reply("221 2.0.0 Bye")
        return "quit"

    def cmd_MAIL(self, line):
        if self.mail:
            self.reply("503 5.5.1 Error: nested MAIL command")
            return
        self.mail = True
        self.utf8 = ARGS.smtputf8 and b" SMTPUTF8" in line.upper()
        self.rcpts = []
        self.reply("250 2.1.0 Ok")

    def refuse_utf8(self, arg, in_tx):
        """553 5.6.7 for a non-ASCII address outside SMTPUTF8 (RFC 6531)."""
        if all(b < 0x80 for b in arg) or (ARGS.smtputf8 and in_tx):
            return False
        self.reply("553 5.6.7 fake: non-ASCII address needs SMTPUTF8")
        return True

    def cmd_RCPT(self, line):
        if not self.mail:
            self.reply("503 5.5.1 Error: need MAIL command")
            return
        if ARGS.scenario == "tempfail-rcpt":
            self.reply("451 4.3.0 fake: try again later")
            return
        addr = line.split(b":", 1)[1] if b":" in line else b""
        if self.refuse_utf8(addr, self.utf8):
            return
        if self.line_chunk == self.rcpt_chunk:
            with LOCK:
                STATE["pipelined"] += 1
                write_status()
        self.rcpt_chunk = self.line_chunk
        lp = local_part(addr)
        if lp.startswith(b"x-hang"):
            self.hung = True
            return
        if lp.startswith(b"x-temp"):
            self.reply("451 4.2.1 fake: mailbox busy, try again")
            return
        if lp.startswith(b"x-slow"):
            time.sleep(ARGS.delay)
        domain = addr.strip().rstrip(b">").rpartition(b"@")[2]
        if local_part(addr).startswith(b"ok") or domain.startswith(b"catchall"):
            self.rcpts.append(addr.strip().lstrip(b"<").rstrip(b">"))
            self.reply("250 2.1.5 Ok")
        else:
            self.reply("550 5.1.1 %s: Recipient address rejected: User unknown"
                       % addr.strip().decode("latin-1"))

    def cmd_VRFY(self, line):
        arg = line[5:]
        if self.refuse_utf8(arg, arg.upper().endswith(b" SMTPUTF8")):
            return
        arg = arg[:-9] if arg.upper().endswith(b" SMTPUTF8") else arg
        lp = local_part(arg)
        if lp.startswith(b"ok"):
            self.reply("250 2.0.0 %s" % arg.decode("latin-1"))
        elif lp.startswith(b"amb"):
            self.reply("252 2.0.0 cannot verify")
        else:
            self.reply("550 5.1.1 %s: User unknown" % arg.decode("latin-1"))

    def cmd_EXPN(self, line):
        arg = line[5:]
        if self.refuse_utf8(arg, arg.upper().endswith(b" SMTPUTF8")):
            return
        arg = arg[:-9] if arg.upper().endswith(b" SMTPUTF8") else arg
        lp = local_part(arg)
        if lp.startswith(b"ok"):
            self.reply("250 2.0.0 <one@fake.test>", "250 2.0.0 <two@fake.test>")
        else:
            self.reply("550 5.1.1 %s: no such list" % arg.decode("latin-1"))

    def cmd_DATA(self, line):
        if not self.rcpts:
            self.reply("554 5.5.1 Error: no valid recipients")
            return
        if ARGS.scenario == "tempfail-data":
            self.reply("451 4.3.0 fake: data tempfail (100% busy)")
            return
        self.reply("354 End data with <CR><LF>.<CR><LF>")
        data = b""
        while True:
            l = self.readline()
            if l is None:
                return "quit"
            if l == b".":
                break
            data += l + b"\r\n"
        log_data(self.rcpts, data)
        if ARGS.scenario == "hang-data":
            while self.readline() is not None:
                pass
            return "quit"
        if self.lmtp:
            for r in self.rcpts:
                lp = local_part(r)
                if lp.startswith(b"oktemp"):
                    self.reply("452 4.2.2 <%s> Mailbox full" % r.decode("latin-1"))
                elif lp.startswith(b"okperm"):
                    self.reply("552 5.2.2 <%s> Over quota" % r.decode("latin-1"))
                else:
                    self.reply("250 2.0.0 <%s> Saved" % r.decode("latin-1"))
        else:
            self.reply("250 2.0.0 Ok: queued as FAKE1")
        self.mail = False
        self.rcpts = []

    # -- AUTH (PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-256) against --auth USER:PASS
    def cmd_AUTH(self, line):
        parts = line.split(b" ")
        mech = parts[1].upper().decode("latin-1") if len(parts) > 1 else ""
        initial = parts[2] if len(parts) > 2 else None
        if not ARGS.auth or mech not in ARGS.mechs.split():
            self.reply("504 5.5.4 Unrecognized authentication type")
            return
        ok = getattr(self, "auth_" + mech.replace("-", "_"))(initial)
        if ok is None:
            return
        self.reply("235 2.7.0 Authentication successful" if ok
                   else "535 5.7.8 Error: authentication failed")

    def challenge(self, data):
        self.send(b"334 " + base64.b64encode(data) + b"\r\n")
        l = self.readline()
        log_line(l if l is not None else b"(eof)")
        if l is None or l == b"*":
            if l == b"*":
                self.reply("501 5.7.0 Authentication aborted")
            return None
        return base64.b64decode(l)

    def user_pass(self):
        u, p = ARGS.auth.split(":", 1)
        return u.encode(), p.encode()

    def auth_PLAIN(self, initial):
        data = base64.b64decode(initial) if initial else self.challenge(b"")
        if data is None:
            return None
        f = data.split(b"\0")
        return len(f) == 3 and (f[1], f[2]) == self.user_pass()

    def auth_LOGIN(self, initial):
        u = self.challenge(b"Username:")
        if u is None:
            return None
        p = self.challenge(b"Password:")
        if p is None:
            return None
        return (u, p) == self.user_pass()

    def auth_CRAM_MD5(self, initial):
        chal = b"<%d.%d@fake.test>" % (os.getpid(), int(time.time()))
        resp = self.challenge(chal)
        if resp is None:
            return None
        user, _, digest = resp.rpartition(b" ")
        u, p = self.user_pass()
        want = hmac.new(p, chal, hashlib.md5).hexdigest().encode()
        return user == u and hmac.compare_digest(digest, want)

    def auth_SCRAM_SHA_256(self, initial):
        first = base64.b64decode(initial) if initial else self.challenge(b"")
        if first is None or not first.startswith(b"n,,"):
            return False
        bare = first[3:]
        attrs = dict(a.split(b"=", 1) for a in bare.split(b","))
        u, p = self.user_pass()
        salt, iters = b"fakesalt1234", 4096
        snonce = attrs[b"r"] + base64.b64encode(os.urandom(12))
        sfirst = b"r=" + snonce + b",s=" + base64.b64encode(salt) + b",i=%d" % iters
        final = self.challenge(sfirst)
        if final is None:
            return None
        if ARGS.scram_final == "missing":
            return True     # "235" without v=: it never checked the proof
        without_proof, _, proof = final.rpartition(b",p=")
        auth_msg = bare + b"," + sfirst + b"," + without_proof
        salted = hashlib.pbkdf2_hmac("sha256", p, salt, iters)
        ckey = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        stored = hashlib.sha256(ckey).digest()
        csig = hmac.new(stored, auth_msg, hashlib.sha256).digest()
        want = bytes(a ^ b for a, b in zip(ckey, csig))
        name = attrs[b"n"].replace(b"=2C", b",").replace(b"=3D", b"=")
        if ARGS.scram_final == "good" and (name != u or base64.b64decode(proof) != want):
            return False
        skey = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
        ssig = hmac.new(skey, auth_msg, hashlib.sha256).digest()
        if ARGS.scram_final == "wrong":
            ssig = bytes(32)
        empty = self.challenge(b"v=" + base64.b64encode(ssig))
        return None if empty is None else True


class ImapSession(Session):
    """--proto imap: greeting, CAPABILITY (--imap-caps), LOGIN with quoted
    strings and literals, AUTHENTICATE PLAIN (with or without SASL-IR),
    NOOP, LOGOUT. Faults: garbage, hang, bigline, slow as for SMTP."""

    def handle(self):
        sc = ARGS.scenario
        if sc == "hang":
            while self.readline() is not None:
                pass
            return
        if sc == "garbage":
            self.send("HELLO I am not an IMAP server\r\n")
        elif sc == "bigline":
            self.send(b"* OK " + b"x" * (1024 * 1024))
            while self.readline() is not None:
                pass
            return
        else:
            self.send("* OK fake IMAP ready\r\n")
        while True:
            line = self.readline()
            if line is None:
                return
            log_line(line)
            tag, _, rest = line.partition(b" ")
            verb, _, args = rest.partition(b" ")
            verb = verb.upper()
            if verb == b"CAPABILITY":
                self.send("* CAPABILITY IMAP4rev1 %s\r\n%s OK done\r\n"
                          % (ARGS.imap_caps, tag.decode("latin-1")))
            elif verb == b"NOOP":
                self.send(tag + b" OK NOOP done\r\n")
            elif verb == b"LOGOUT":
                self.end_session()
                self.send(b"* BYE bye\r\n" + tag + b" OK LOGOUT done\r\n")
                return
            elif verb == b"LOGIN":
                strings = self.astrings(args)
                if strings is None:
                    return
                self.answer(tag, len(strings) == 2 and tuple(strings) == self.user_pass())
            elif verb == b"AUTHENTICATE" and args.split(b" ")[0].upper() == b"PLAIN":
                parts = args.split(b" ")
                if len(parts) > 1:
                    data = parts[1]
                else:
                    self.send(b"+ \r\n")
                    data = self.readline()
                    if data is None:
                        return
                    log_line(data)
                try:
                    f = base64.b64decode(data, validate=True).split(b"\0")
                except ValueError:
                    self.send(tag + b" BAD bad base64\r\n")
                    continue
                self.answer(tag, len(f) == 3 and (f[1], f[2]) == self.user_pass())
            else:
                self.send(tag + b" BAD unknown command\r\n")

    def answer(self, tag, ok):
        self.send(tag + (b" OK Logged in\r\n" if ok else b" NO [AUTHENTICATIONFAILED] failed\r\n"))

    def astrings(self, args):
        """Parses atoms, quoted strings and literals; reads literal data."""
        out = []
        while True:
            args = args.lstrip(b" ")
            if not args:
                return out
            if args.startswith(b'"'):
                val, i = b"", 1
                while i < len(args) and args[i:i + 1] != b'"':
                    if args[i:i + 1] == b"\\":
                        i += 1
                    val += args[i:i + 1]
                    i += 1
                out.append(val)
                args = args[i + 1:]
            elif args.startswith(b"{") and args.endswith(b"}"):
                spec = args[1:-1]
                n = int(spec.rstrip(b"+"))
                if not spec.endswith(b"+"):
                    self.send(b"+ go ahead\r\n")
                while len(self.buf) < n:
                    chunk = self.sock.recv(65536)
                    if not chunk:
                        return None
                    self.buf += chunk
                out.append(self.buf[:n])
                self.buf = self.buf[n:]
                args = self.readline()
                if args is None:
                    return None
                log_line(b"(literal) " + args)
            else:
                word, _, args = args.partition(b" ")
                out.append(word)


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class UnixServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    request_queue_size = 128


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--unix", help="listen on this unix socket path instead of TCP")
    ap.add_argument("--log")
    ap.add_argument("--status")
    ap.add_argument("--data")
    ap.add_argument("--delay", type=float, default=3.0)
    ap.add_argument("--idle-close", type=float, default=0.0)
    ap.add_argument("--auth")
    ap.add_argument("--mechs", default="PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256")
    ap.add_argument("--proto", choices=("smtp", "imap"), default="smtp")
    ap.add_argument("--imap-caps", default="AUTH=PLAIN SASL-IR")
    ap.add_argument("--scram-final", choices=("good", "missing", "wrong"), default="good")
    ap.add_argument("--smtputf8", action="store_true")
    ap.add_argument("--bare-cr-eol", action="store_true")
    ap.add_argument("scenario")
    ARGS = ap.parse_args()
    known = ("normal nostarttls garbage hang reset bigline slow tempfail-rcpt "
             "tempfail-data hang-data manylines").split()
    if ARGS.scenario not in known:
        sys.exit("unknown scenario %s (known: %s)" % (ARGS.scenario, " ".join(known)))
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    handler = ImapSession if ARGS.proto == "imap" else Session
    if ARGS.unix:
        srv = UnixServer(ARGS.unix, handler)
        port = 0
    else:
        srv = Server(("127.0.0.1", ARGS.port), handler)
        port = srv.server_address[1]
    write_status()
    print("PORT %d" % port, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
