-- t-rcpt-dovecot.lua - RCPT validation against a real Dovecot:
-- a known user continues, an unknown one gets 550 5.1.1, a domain that is
-- not validated passes; with Dovecot stopped, cached answers still hold and
-- an uncached recipient gets 451 4.4.3 quickly; after Dovecot restarts the
-- error was not cached; an authenticated sender's recipients are not checked.
package.path = os.getenv("NEXTHOP_SRC") .. "/tests/lua/?.lua;" .. package.path
local lib = require("lib")
local rig = ". " .. os.getenv("RIG_SH") .. "; "
local dovecot_dir = os.getenv("TEST_DIR") .. "/dovecot"

-- The SMTP code of a refusal is not visible through miltertest, so read it
-- from the milter's log line for this recipient (tests/e2e check it through
-- a real Postfix).
local function last_code(addr)
  local code = nil
  for line in io.lines(os.getenv("MILTER_LOG")) do
    if line:find("rcpt: ", 1, true) and line:find("rcpt=" .. addr, 1, true) then
      code = line:match("code=(%d+)") or "accept"
    end
  end
  return code
end

local function rcpt_code(conn, addr, want_code)
  mt.macro(conn, SMFIC_RCPT, "i", "QID1")
  lib.check(mt.rcptto(conn, addr) == nil, "rcptto " .. addr)
  local r = mt.getreply(conn)
  if want_code == nil then
    lib.check(r == SMFIR_CONTINUE, addr .. ": expected continue, got " .. tostring(r))
  else
    lib.check(r == SMFIR_REPLYCODE or r == SMFIR_TEMPFAIL or r == SMFIR_REJECT,
              addr .. ": expected a refusal, got " .. tostring(r))
    local got = last_code(addr)
    lib.check(got == want_code, addr .. ": logged code " .. tostring(got) .. ", wanted " .. want_code)
  end
end

-- Waits until the host-down mark the milter logged ("remote dovecot:
-- marked down for N ms", at HH:MM:SS.mmm) has run out.
local function wait_down_mark_expired()
  local mark
  for line in io.lines(os.getenv("MILTER_LOG")) do
    if line:find("remote dovecot: marked down for %d+ ms") then mark = line end
  end
  lib.check(mark, "no 'marked down' line in the milter log")
  local function ms_of_day(hms)
    local h, m, s, ms = hms:match("^(%d+):(%d+):(%d+)%.(%d%d%d)")
    return ((tonumber(h) * 60 + tonumber(m)) * 60 + tonumber(s)) * 1000 + tonumber(ms)
  end
  local p = io.popen("date +%H:%M:%S.%3N")
  local now = ms_of_day(p:read("*l"))
  p:close()
  local left = ms_of_day(mark) + tonumber(mark:match("marked down for (%d+) ms")) - now
  if left < -43200000 then left = left + 86400000 elseif left > 43200000 then left = left - 86400000 end
  if left > 0 then os.execute(string.format("sleep %.3f", left / 1000 + 0.05)) end
end

lib.run(function()
  local conn = lib.connect()
  lib.start(conn)
  rcpt_code(conn, "<alice@dovecot.test>")
  rcpt_code(conn, "<nobody@dovecot.test>", "550")
  rcpt_code(conn, "<anyone@elsewhere.example>")
  rcpt_code(conn, "<bob@dovecot.test>")

  -- Dovecot down: cached answers still hold; an uncached one is 451, fast.
  assert(os.execute("bash -c '" .. rig .. "dovecot_stop " .. dovecot_dir .. "'"))
  rcpt_code(conn, "<alice@dovecot.test>")
  rcpt_code(conn, "<nobody@dovecot.test>", "550")
  local t0 = os.time()
  rcpt_code(conn, "<carol@dovecot.test>", "451")
  lib.check(os.time() - t0 <= 4, "451 took longer than the 3 s timeout")
  t0 = os.time()
  rcpt_code(conn, "<dave@dovecot.test>", "451")
  lib.check(os.time() - t0 <= 1, "host marked down: the second 451 should be immediate")

  -- Dovecot back: the error was not cached, bob (cached) still fine.
  assert(os.execute("bash -c '" .. rig .. "dovecot_restart " .. dovecot_dir .. " >/dev/null'"))
  wait_down_mark_expired()
  rcpt_code(conn, "<carol@dovecot.test>", "550")
  rcpt_code(conn, "<bob@dovecot.test>")

  -- an authenticated sender is not checked (skip-authenticated = true, the default)
  mt.macro(conn, SMFIC_MAIL, "{auth_authen}", "alice@dovecot.test")
  lib.check(mt.mailfrom(conn, "<alice@dovecot.test>") == nil, "mailfrom (authenticated)")
  mt.getreply(conn)
  rcpt_code(conn, "<stranger@dovecot.test>")
  mt.disconnect(conn)
end)
