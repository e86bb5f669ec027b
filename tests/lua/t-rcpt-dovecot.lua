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
  os.execute("sleep 3")   -- let the host-down mark expire
  rcpt_code(conn, "<carol@dovecot.test>", "550")
  rcpt_code(conn, "<bob@dovecot.test>")

  -- an authenticated sender is not checked (skip-authenticated = true, the default)
  mt.macro(conn, SMFIC_MAIL, "{auth_authen}", "alice@dovecot.test")
  lib.check(mt.mailfrom(conn, "<alice@dovecot.test>") == nil, "mailfrom (authenticated)")
  mt.getreply(conn)
  rcpt_code(conn, "<stranger@dovecot.test>")
  mt.disconnect(conn)
end)
