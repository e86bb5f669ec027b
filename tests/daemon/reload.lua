-- reload.lua - driven by reload.sh: swaps the config file and sends SIGUSR1
-- in the middle of a message, then checks which config each message used.
package.path = os.getenv("NEXTHOP_SRC") .. "/tests/lua/?.lua;" .. package.path
local lib = require("lib")
local conf = os.getenv("CONF_FILE")
local pid = os.getenv("MILTER_PID")

local function write_conf(header, extra)
  local f = assert(io.open(conf .. ".new", "w"))
  f:write('milter = { log = { level = "debug"; }; };\n')
  f:write('remote = { store = { address = "127.0.0.1"; port = 1; protocol = "lmtp"; tls = { enable = false; }; }; };\n')
  f:write('queue = { outbound = { next-hop = "store"; }; };\n')
  f:write('routing = { action = "header"; header = "' .. header .. '"; };\n')
  f:write((extra or "") .. "\n")
  f:close()
  os.rename(conf .. ".new", conf)
  -- SIGUSR1, then the milter's reload line (loaded or refused)
  local log = os.getenv("MILTER_LOG")
  local from = lib.log_lines(log)
  os.execute("kill -USR1 " .. pid)
  lib.wait_log(log, "milter%-nexthop%[" .. pid .. "%]: %a+: reload", 30, from)
end

lib.run(function()
  local conn = lib.connect()
  lib.start(conn)
  lib.rcpt(conn, "<alice@example.org>")
  -- reload while this message is in flight
  write_conf("X-New")
  lib.finish(conn)
  lib.check(mt.eom_check(conn, MT_HDRADD, "X-Old", "store"), "in-flight message lost its config")

  mt.macro(conn, SMFIC_MAIL, "i", "QID2")
  lib.check(mt.mailfrom(conn, "<s@example.net>") == nil, "mailfrom 2")
  lib.expect(conn, SMFIR_CONTINUE, "mail from 2")
  lib.rcpt(conn, "<alice@example.org>")
  lib.finish(conn)
  lib.check(mt.eom_check(conn, MT_HDRADD, "X-New", "store"), "new config not used after reload")

  -- a broken config: logged, the running one stays
  write_conf("X-Broken", "bogus = 1;")
  mt.macro(conn, SMFIC_MAIL, "i", "QID3")
  lib.check(mt.mailfrom(conn, "<s@example.net>") == nil, "mailfrom 3")
  lib.expect(conn, SMFIR_CONTINUE, "mail from 3")
  lib.rcpt(conn, "<alice@example.org>")
  lib.finish(conn)
  lib.check(mt.eom_check(conn, MT_HDRADD, "X-New", "store"), "broken config replaced the good one")
  mt.disconnect(conn)
end)
