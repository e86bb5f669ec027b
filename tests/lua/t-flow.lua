-- t-flow.lua - a whole SMTP transaction through the running milter (header
-- mode): a local recipient gets the routing header, a forged routing header
-- from the client is removed, an external-only message is left untouched,
-- a bad address gets 501, and a second message on the same connection works.
package.path = os.getenv("NEXTHOP_SRC") .. "/tests/lua/?.lua;" .. package.path
local lib = require("lib")

lib.run(function()
  local conn = lib.connect()
  lib.start(conn)
  lib.rcpt(conn, "<alice@Example.ORG>")
  lib.rcpt(conn, "<bob@elsewhere.example>")
  lib.finish(conn, {{"From", "<sender@example.net>"}, {"X-Nexthop", "forged"}, {"Subject", "hi"}})
  lib.check(mt.eom_check(conn, MT_HDRADD, "X-Nexthop", "store"), "X-Nexthop: store was not added")
  lib.check(mt.eom_check(conn, MT_HDRCHANGE, "X-Nexthop", ""), "the forged X-Nexthop was not removed")
  lib.check(not mt.eom_check(conn, MT_RCPTDELETE, "<alice@Example.ORG>"), "no recipient may be removed in header mode")

  -- second message, same connection: only an external recipient
  mt.macro(conn, SMFIC_MAIL, "i", "QID2")
  lib.check(mt.mailfrom(conn, "<>") == nil, "mailfrom <>")
  lib.expect(conn, SMFIR_CONTINUE, "null sender")
  lib.rcpt(conn, "<carol@elsewhere.example>")
  lib.rcpt(conn, "<bad address@example.org>", SMFIR_REPLYCODE)
  lib.rcpt(conn, "<unbalanced@example.org", SMFIR_REPLYCODE)
  lib.finish(conn)
  lib.check(not mt.eom_check(conn, MT_HDRADD, "X-Nexthop"), "a header was added for an external recipient")
  mt.disconnect(conn)
end)
