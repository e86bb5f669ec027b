-- t-routing-header.lua - every copy of the routing header the client sent
-- (X-Nexthop, in any case) is removed from the MTA's copy on every path,
-- not only when a next hop exists (issue 14): no next hop, quarantine,
-- relay (partly, so the MTA copy stays), header mode, and a relay that
-- fails with on-tempfail = tempfail. Must not: pass when the milter answered
-- without removing them.
package.path = os.getenv("NEXTHOP_SRC") .. "/tests/lua/?.lua;" .. package.path
local lib = require("lib")

local forged = {
  {"From", "<sender@example.net>"}, {"X-Nexthop", "evil"}, {"Subject", "hi"},
  {"x-nexthop", "evil-lower"}, {"X-NEXTHOP", "evil-upper"},
}

local function message(conn, qid, from, rcpts)
  mt.macro(conn, SMFIC_MAIL, "i", qid)
  lib.check(mt.mailfrom(conn, from) == nil, "mailfrom " .. qid)
  lib.expect(conn, SMFIR_CONTINUE, "mail from " .. qid)
  for _, r in ipairs(rcpts) do
    mt.macro(conn, SMFIC_RCPT, "i", qid)
    lib.check(mt.rcptto(conn, r) == nil, "rcptto " .. r)
    lib.expect(conn, SMFIR_CONTINUE, "rcpt " .. r)
  end
  for _, h in ipairs(forged) do
    lib.check(mt.header(conn, h[1], h[2]) == nil, "header " .. h[1])
    lib.expect(conn, SMFIR_CONTINUE, "header " .. h[1])
  end
  lib.check(mt.eoh(conn) == nil, "eoh")
  lib.expect(conn, SMFIR_CONTINUE, "eoh")
  lib.check(mt.bodystring(conn, "body of " .. qid .. "\r\n") == nil, "body")
  lib.expect(conn, SMFIR_CONTINUE, "body")
  lib.check(mt.eom(conn) == nil, "eom " .. qid)
  return mt.getreply(conn)
end

local function removed(conn, what)
  lib.check(mt.eom_check(conn, MT_HDRCHANGE, "X-Nexthop", ""),
            what .. ": the forged routing headers were not removed")
  mt.echo("PASS: " .. what .. ": forged routing headers removed")
end

lib.run(function()
  local conn = lib.connect()
  lib.check(mt.conninfo(conn, "client.example.net", "192.0.2.7") == nil, "conninfo")
  lib.expect(conn, SMFIR_CONTINUE, "connect")

  local r = message(conn, "NOHOP", "<s@example.net>", {"<bob@elsewhere.example>"})
  lib.check(r == SMFIR_CONTINUE, "no next hop: eom reply " .. tostring(r))
  removed(conn, "no next hop")
  lib.check(not mt.eom_check(conn, MT_HDRADD, "X-Nexthop"), "no next hop: a routing header was added")

  r = message(conn, "HOLD", "<hold@example.net>", {"<alice@dovecot.test>"})
  lib.check(r == SMFIR_CONTINUE, "quarantine: eom reply " .. tostring(r))
  lib.check(mt.eom_check(conn, MT_QUARANTINE), "quarantine: not quarantined")
  removed(conn, "quarantine")

  r = message(conn, "RELAY", "<s@example.net>", {"<alice@dovecot.test>", "<bob@elsewhere.example>"})
  lib.check(r == SMFIR_CONTINUE, "relay: eom reply " .. tostring(r))
  lib.check(mt.eom_check(conn, MT_RCPTDELETE, "<alice@dovecot.test>"), "relay: alice not relayed")
  removed(conn, "relay, MTA copy kept for the external recipient")

  r = message(conn, "HEADER", "<header@example.net>", {"<alice@dovecot.test>"})
  lib.check(r == SMFIR_CONTINUE, "header: eom reply " .. tostring(r))
  lib.check(mt.eom_check(conn, MT_HDRADD, "X-Nexthop", "dovecot"), "header: X-Nexthop: dovecot not added")
  removed(conn, "header")

  r = message(conn, "TEMPFAIL", "<s@example.net>", {"<carol@down.test>", "<bob@elsewhere.example>"})
  lib.check(r == SMFIR_REPLYCODE or r == SMFIR_TEMPFAIL, "tempfail: eom reply " .. tostring(r))
  removed(conn, "relay failed, on-tempfail = tempfail")
  mt.disconnect(conn)
end)
