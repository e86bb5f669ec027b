-- catchall.lua - driven by catchall.sh against fakeserver.py's "normal" scenario.
package.path = os.getenv("NEXTHOP_SRC") .. "/tests/lua/?.lua;" .. package.path
local lib = require("lib")
lib.run(function()
  local conn = lib.connect()
  lib.start(conn)
  lib.rcpt(conn, "<ok1@normal.test>")
  -- the catch-all probe runs in the background: wait until the remote answered it
  lib.wait_log(os.getenv("FAKE_LOG"), "RCPT TO:<nexthop%-probe%-%x+@normal%.test>", 30)
  lib.rcpt(conn, "<nobody@normal.test>", SMFIR_REPLYCODE)
  lib.rcpt(conn, "<first@catchall.test>")
  lib.wait_log(os.getenv("MILTER_LOG"), "domain=catchall%.test accepts any local part", 30)
  lib.rcpt(conn, "<second@catchall.test>")
  lib.rcpt(conn, "<third@catchall.test>")
  lib.rcpt(conn, "<fourth@catchall.test>")
  lib.rcpt(conn, "<nobody2@normal.test>", SMFIR_REPLYCODE)
  mt.disconnect(conn)
end)
