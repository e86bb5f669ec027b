-- tests/lua/lib.lua - small helpers for the miltertest scripts.
-- Lua errors inside miltertest are silent, so every script runs its body
-- through run(), which prints the error and exits non-zero.
local lib = {}

function lib.run(body)
  local ok, err = pcall(body)
  if not ok then
    mt.echo("FAIL: " .. tostring(err))
    os.exit(1)
  end
  mt.echo("PASS")
end

function lib.check(cond, what)
  if not cond then error(what, 2) end
end

function lib.connect()
  local conn = mt.connect(os.getenv("MILTER_SOCK"), 40, 0.25)
  lib.check(conn, "cannot connect to " .. tostring(os.getenv("MILTER_SOCK")))
  mt.set_timeout(60)
  return conn
end

-- Sends a command and checks the reply code (SMFIR_*).
function lib.expect(conn, want, what, ...)
  local f = ...
  local got = mt.getreply(conn)
  lib.check(got == want, what .. ": reply " .. tostring(got) .. ", wanted " .. tostring(want))
end

function lib.start(conn, from, client_ip)
  lib.check(mt.conninfo(conn, "client.example.net", client_ip or "192.0.2.7") == nil, "conninfo")
  lib.expect(conn, SMFIR_CONTINUE, "connect")
  lib.check(mt.helo(conn, "client.example.net") == nil, "helo")
  lib.expect(conn, SMFIR_CONTINUE, "helo")
  mt.macro(conn, SMFIC_MAIL, "i", "QID1")
  lib.check(mt.mailfrom(conn, from or "<sender@example.net>") == nil, "mailfrom")
  lib.expect(conn, SMFIR_CONTINUE, "mail from")
end

function lib.rcpt(conn, addr, want)
  mt.macro(conn, SMFIC_RCPT, "i", "QID1")
  lib.check(mt.rcptto(conn, addr) == nil, "rcptto " .. addr)
  lib.expect(conn, want or SMFIR_CONTINUE, "rcpt " .. addr)
end

-- Sends headers (a list of {name, value}), a body, and end of message.
function lib.finish(conn, headers, body, want)
  for _, h in ipairs(headers or {{"From", "<sender@example.net>"}, {"Subject", "test"}}) do
    lib.check(mt.header(conn, h[1], h[2]) == nil, "header " .. h[1])
    lib.expect(conn, SMFIR_CONTINUE, "header " .. h[1])
  end
  lib.check(mt.eoh(conn) == nil, "eoh")
  lib.expect(conn, SMFIR_CONTINUE, "eoh")
  lib.check(mt.bodystring(conn, body or "hello\r\n") == nil, "body")
  lib.expect(conn, SMFIR_CONTINUE, "body")
  lib.check(mt.eom(conn) == nil, "eom")
  lib.expect(conn, want or SMFIR_CONTINUE, "eom")
end

return lib
