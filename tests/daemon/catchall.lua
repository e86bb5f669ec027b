-- catchall.lua - driven by catchall.sh against fakeserver.py's "normal" scenario.
package.path = os.getenv("NEXTHOP_SRC") .. "/tests/lua/?.lua;" .. package.path
local lib = require("lib")
lib.run(function()
  local conn = lib.connect()
  lib.start(conn)
  lib.rcpt(conn, "<ok1@normal.test>")
  os.execute("sleep 0.5")   -- the catch-all probe runs in the background
  lib.rcpt(conn, "<nobody@normal.test>", SMFIR_REPLYCODE)
  lib.rcpt(conn, "<first@catchall.test>")
  os.execute("sleep 0.5")
  lib.rcpt(conn, "<second@catchall.test>")
  lib.rcpt(conn, "<third@catchall.test>")
  lib.rcpt(conn, "<fourth@catchall.test>")
  lib.rcpt(conn, "<nobody2@normal.test>", SMFIR_REPLYCODE)
  mt.disconnect(conn)
end)
