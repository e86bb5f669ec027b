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

-- The number of lines the file at PATH has now (0 if there is none).
function lib.log_lines(path)
  local n, f = 0, io.open(path or "", "r")
  if f then
    for _ in f:lines() do n = n + 1 end
    f:close()
  end
  return n
end

-- Waits (SECS at most, default 30) until a line after line FROM (default 0)
-- of the file at PATH matches the Lua pattern PAT (a log line of the milter
-- or of a fake remote); returns the line, fails the test when none came.
function lib.wait_log(path, pat, secs, from)
  local deadline = os.time() + (secs or 30)
  repeat
    local f, n = io.open(path or "", "r"), 0
    if f then
      for line in f:lines() do
        n = n + 1
        if n > (from or 0) and line:find(pat) then
          f:close()
          return line
        end
      end
      f:close()
    end
    os.execute("sleep 0.1")
  until os.time() > deadline
  error("no line matching '" .. pat .. "' in " .. tostring(path) .. " within " .. (secs or 30) .. " s", 2)
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
