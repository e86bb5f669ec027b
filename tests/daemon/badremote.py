#!/usr/bin/env python3
"""badremote.py - a fake SMTP/LMTP server for the faults that
tests/lib/fakeserver.py does not script: TLS trouble, and a remote that
echoes credentials back (used by tests/daemon/faults.sh and secrets.sh).

Usage: badremote.py --cert CERT --key KEY [--port N | --unix PATH] [--log FILE] [--delay S]
                    [--probe-delay S] SCENARIO

Prints "PORT <n>" on stdout once listening on 127.0.0.1 ("PORT 0" with
--unix, which listens on the unix socket PATH instead). Every command line
received (in plain text or inside TLS) is appended to --log, so a test can
prove what reached the server. Must not: talk to anything but its own
clients, or be used as a real server (it accepts any AUTH).

Scenarios:
  tls                 implicit TLS with CERT (e.g. one for the wrong name), then SMTP
  tls-old             the same, but speaking only TLS 1.0 and 1.1
  starttls            plain greeting, STARTTLS offered, upgraded with CERT
  tls-stall           implicit TLS: reads the ClientHello, sends part of its
                      first handshake flight, then stalls (socket stays open)
  starttls-stall      STARTTLS accepted with 220, then the same stall
  starttls-refused    STARTTLS offered, answered 454 4.7.0
  starttls-inject     "220 Ready" and a plain-text "250" in the same packet
                      (the STARTTLS command injection attack)
  auth-echo           plain text, no STARTTLS; AUTH PLAIN/LOGIN fails with a
                      535 reply that echoes the client's last (credential) line
  slow-rcpt           plain text, no STARTTLS; every reply at once except RCPT,
                      which is answered after --delay seconds (the milter's
                      catch-all probe, RCPT TO:<nexthop-probe-...>, after
                      --probe-delay seconds, by default --delay)
After TLS the dialogue is: LHLO/EHLO, MAIL, RCPT ("ok*" 250, else 550),
RSET, NOOP, QUIT, AUTH (always 235, except auth-echo).
"""
import argparse
import os
import signal
import socket
import socketserver
import ssl
import sys
import threading
import time
import warnings

ARGS = None
warnings.filterwarnings("ignore", r"ssl\.TLSVersion\.TLSv1", DeprecationWarning)  # tls-old
LOCK = threading.Lock()


def log_line(line):
    if ARGS.log:
        with LOCK, open(ARGS.log, "ab") as f:
            f.write(line + b"\n")


def server_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(ARGS.cert, ARGS.key)
    if ARGS.scenario == "tls-old":
        # OpenSSL 3 refuses these versions below security level 0
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    return ctx


class Stream:
    """Line I/O over a plain or TLS socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def readline(self):
        while b"\n" not in self.buf:
            try:
                chunk = self.sock.recv(65536)
            except (OSError, ssl.SSLError):
                return None
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r")


def stall_handshake(sock):
    """Starts a TLS handshake and stops in the middle of the server's flight."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = server_context().wrap_bio(inc, out, server_side=True)
    sock.settimeout(5)
    flight = b""
    end = time.time() + 5
    while not flight and time.time() < end:
        try:
            data = sock.recv(65536)
        except OSError:
            return
        if not data:
            return
        inc.write(data)
        try:
            obj.do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLError):
            pass
        flight = out.read()
    if flight:
        sock.sendall(flight[: max(1, min(len(flight) // 2, 60))])
    sock.settimeout(None)
    while True:  # hold the connection open, say nothing more
        try:
            if not sock.recv(65536):
                return
        except OSError:
            return


class Session(socketserver.BaseRequestHandler):
    def handle(self):
        sc = ARGS.scenario
        sock = self.request
        if sc == "tls-stall":
            stall_handshake(sock)
            return
        if sc in ("tls", "tls-old"):
            try:
                sock = server_context().wrap_socket(sock, server_side=True)
            except (OSError, ssl.SSLError):
                log_line(b"(tls handshake failed)")
                return
        st = Stream(sock)
        st.send("220 badremote.test ESMTP badremote\r\n")
        self.dialogue(st, tls=sc in ("tls", "tls-old"))

    def hello_reply(self, st, tls):
        lines = ["250-badremote.test", "250-PIPELINING", "250-ENHANCEDSTATUSCODES", "250-AUTH PLAIN LOGIN"]
        if not tls and ARGS.scenario not in ("auth-echo", "slow-rcpt"):
            lines.append("250-STARTTLS")
        lines.append("250 8BITMIME")
        st.send("\r\n".join(lines) + "\r\n")

    def starttls(self, st):
        sc = ARGS.scenario
        if sc == "starttls-refused":
            st.send("454 4.7.0 TLS not available due to temporary reason\r\n")
            return st, False
        if sc == "starttls-inject":
            st.send("220 2.0.0 Ready to start TLS\r\n250 2.1.5 injected before the handshake\r\n")
        else:
            st.send("220 2.0.0 Ready to start TLS\r\n")
        if sc == "starttls-stall":
            stall_handshake(st.sock)
            return None, False
        try:
            tls = server_context().wrap_socket(st.sock, server_side=True)
        except (OSError, ssl.SSLError):
            log_line(b"(tls handshake failed)")
            return None, False
        return Stream(tls), True

    def auth_echo(self, st, line):
        """Fails AUTH, quoting the client's last line (its credentials)."""
        words = line.split(b" ")
        last = line
        if len(words) < 3:  # no initial response: ask for it (LOGIN: user, then password)
            prompts = [b"VXNlcm5hbWU6", b"UGFzc3dvcmQ6"] if words[1:2] == [b"LOGIN"] else [b""]
            for p in prompts:
                st.send(b"334 " + p + b"\r\n")
                last = st.readline()
                if last is None:
                    return False
                log_line(last)
        st.send(b"535 5.7.8 Authentication failed for: " + last + b"\r\n")
        return True

    def dialogue(self, st, tls):
        while True:
            line = st.readline()
            if line is None:
                return
            log_line(line)
            verb = line.split(b" ", 1)[0].split(b":", 1)[0].upper()
            if verb in (b"EHLO", b"LHLO"):
                self.hello_reply(st, tls)
            elif verb == b"STARTTLS" and not tls:
                st, tls = self.starttls(st)
                if st is None:
                    return
            elif verb == b"RCPT":
                addr = line.split(b":", 1)[1].strip().lstrip(b"<") if b":" in line else b""
                if ARGS.scenario == "slow-rcpt":
                    probe = addr.lower().startswith(b"nexthop-probe-")
                    time.sleep(ARGS.probe_delay if probe and ARGS.probe_delay is not None else ARGS.delay)
                st.send("250 2.1.5 Ok\r\n" if addr.lower().startswith(b"ok") else
                        "550 5.1.1 User unknown\r\n")
            elif verb in (b"MAIL", b"RSET", b"NOOP"):
                st.send("250 2.0.0 Ok\r\n")
            elif verb == b"AUTH" and ARGS.scenario == "auth-echo":
                if not self.auth_echo(st, line):
                    return
            elif verb == b"AUTH":
                st.send("235 2.7.0 Authentication successful\r\n")
            elif verb == b"QUIT":
                st.send("221 2.0.0 Bye\r\n")
                return
            else:
                st.send("502 5.5.2 Error: command not recognized\r\n")


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class UnixServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--unix")
    ap.add_argument("--log")
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--delay", type=float, default=2.0)
    ap.add_argument("--probe-delay", type=float)
    ap.add_argument("scenario", choices=["tls", "tls-old", "starttls", "tls-stall",
                                         "starttls-stall", "starttls-refused", "starttls-inject",
                                         "auth-echo", "slow-rcpt"])
    ARGS = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    if ARGS.unix:
        srv = UnixServer(ARGS.unix, Session)
        os.chmod(ARGS.unix, 0o666)
        print("PORT 0", flush=True)
    else:
        srv = Server(("127.0.0.1", ARGS.port), Session)
        print("PORT %d" % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
