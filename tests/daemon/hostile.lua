-- hostile.lua - driven by hostile.sh: hostile envelope input through the
-- milter protocol. Each case runs as its own transaction with its own queue
-- id (macro "i"), so its verdict can be read back from the milter log line
-- for that queue id: accept, 501 (syntax), 550 (the remote said no) or 451.
-- The wire form of the milter protocol cannot carry a NUL inside an
-- argument: "<a\0b>" arrives as two arguments "<a" and "b>", which is how
-- the NUL cases are sent. Must not: stop at the first failure (every case
-- is reported), or pass when the milter did not answer.
-- miltertest refuses arguments over ~1,000 bytes, so the 10,000-byte
-- addresses are sent by hostile.sh with milterclient.py.
package.path = os.getenv("NEXTHOP_SRC") .. "/tests/lua/?.lua;" .. package.path
local lib = require("lib")
local unpack = table.unpack or unpack
local log = os.getenv("MILTER_LOG")
local failures = {}

local function failed(what)
  failures[#failures + 1] = what
  mt.echo("FAIL: " .. what)
end

-- The verdict the milter logged for queue id qid: "accept", "501", "550", "451" or nil.
local function verdict(qid)
  local v = nil
  for line in io.lines(log) do
    if line:find(": rcpt: queue=" .. qid .. " ", 1, true) then
      if line:find(" result=accept", 1, true) then
        v = "accept"
      else
        v = line:match(" result=%a+ code=(%d+)") or (line:find(" result=reject why=", 1, true) and "501")
      end
    end
  end
  return v
end

local function count_lines(needle)
  local n = 0
  for line in io.lines(log) do
    if line:find(needle, 1, true) then n = n + 1 end
  end
  return n
end

local function shown(args)
  local s = table.concat(args, "\\0"):gsub("[%c\128-\255]", function(c) return string.format("\\x%02x", c:byte()) end)
  if #s > 60 then s = s:sub(1, 60) .. "...(" .. #s .. " bytes)" end
  return s
end

local function new_message(conn, qid, from)
  mt.macro(conn, SMFIC_MAIL, "i", qid)
  lib.check(mt.mailfrom(conn, from or "<sender@example.net>") == nil, "mailfrom " .. qid)
  lib.expect(conn, SMFIR_CONTINUE, "mail from " .. qid)
end

-- One RCPT in a fresh transaction; want lists the acceptable verdicts.
local function rcpt_case(conn, qid, args, want)
  new_message(conn, qid)
  mt.macro(conn, SMFIC_RCPT, "i", qid)
  lib.check(mt.rcptto(conn, unpack(args)) == nil, "rcptto " .. qid .. ": no answer from the milter")
  local r = mt.getreply(conn)
  local v = verdict(qid)
  local ok_reply = (v == "accept" and r == SMFIR_CONTINUE) or (v ~= nil and v ~= "accept" and r == SMFIR_REPLYCODE)
  local ok_want = false
  for _, w in ipairs(want) do ok_want = ok_want or w == v end
  if ok_reply and ok_want then
    mt.echo("PASS: " .. qid .. " " .. shown(args) .. " -> " .. v)
  else
    failed(qid .. " " .. shown(args) .. ": got " .. tostring(v) .. " (reply " .. tostring(r) ..
           "), wanted " .. table.concat(want, " or "))
  end
  mt.abort(conn)
end

-- One MAIL FROM, then one RCPT <ok-mail@fake.test>; want is "continue" or
-- "501". A bad sender may be refused at MAIL or, when the milter does not
-- answer MAIL (SMFIP_NR_MAIL), at the RCPT that follows: either way the
-- transaction stops and the milter logs "mail: from=rejected".
local function mail_case(conn, qid, args, want)
  local before = count_lines(": mail: from=rejected")
  mt.macro(conn, SMFIC_MAIL, "i", qid)
  lib.check(mt.mailfrom(conn, unpack(args)) == nil, "mailfrom " .. qid .. ": no answer from the milter")
  local r = mt.getreply(conn)
  if r == SMFIR_CONTINUE then
    mt.macro(conn, SMFIC_RCPT, "i", qid)
    lib.check(mt.rcptto(conn, "<ok-mail@fake.test>") == nil, "rcptto after mailfrom " .. qid)
    r = mt.getreply(conn)
  end
  local rejected = count_lines(": mail: from=rejected") - before
  local got = (r == SMFIR_CONTINUE and rejected == 0) and "continue"
           or (r == SMFIR_REPLYCODE and rejected == 1) and "501"
           or ("reply " .. tostring(r) .. ", " .. rejected .. " rejection(s) logged")
  if got == want then
    mt.echo("PASS: " .. qid .. " MAIL " .. shown(args) .. " -> " .. got)
  else
    failed(qid .. " MAIL " .. shown(args) .. ": got " .. got .. ", wanted " .. want)
  end
  mt.abort(conn)
end

local rcpt_cases = {
  -- CR/LF: never a second command on the remote
  { "R01", { "<ok1@fake.test>\r\nRSET\r\nRCPT TO:<inject1@fake.test>" }, { "501" } },
  { "R02", { "<ok2@fake.test>\nRCPT TO:<inject2@fake.test>" }, { "501" } },
  { "R03", { "<ok3@fake.test>\rRCPT TO:<inject3@fake.test>" }, { "501" } },
  { "R04", { '<"ok4\r\nRCPT TO:<inject4@fake.test>"@fake.test>' }, { "501" } },
  { "R05", { "<ok5@fake.test\r\n>" }, { "501" } },
  -- ESMTP parameters are not forwarded, whatever they hold
  { "R06", { "<ok6@fake.test>", "NOTIFY=NEVER\r\nRCPT TO:<inject6@fake.test>" }, { "accept" } },
  -- NUL inside the address (the wire form: two arguments)
  { "R07", { "<ok7", "RCPT TO:<inject7@fake.test>" }, { "501" } },
  { "R08", { "<ok8@fake.test", "\r\nRCPT TO:<inject8@fake.test>>" }, { "501" } },
  -- over-long addresses (10,000 bytes and more: miltertest cannot send them, hostile.sh does)
  { "R11", { "<ok11" .. string.rep("a", 300) .. "@fake.test>" }, { "501" } },
  { "R12", { "<" .. string.rep("x", 65) .. "@fake.test>" }, { "501" } },
  -- control bytes
  { "R13", { "<ok13\1@fake.test>" }, { "501" } },
  { "R14", { "<ok14\27[2J@fake.test>" }, { "501" } },
  { "R15", { "<ok15\127@fake.test>" }, { "501" } },
  { "R16", { "<ok16\t@fake.test>" }, { "501" } },
  { "R17", { "<ok17@fake.test\8>" }, { "501" } },
  -- the null path and empty arguments
  { "R18", { "<>" }, { "501" } },
  { "R19", { "" }, { "501" } },
  { "R20", { "< >" }, { "501" } },
  -- unbalanced and stray brackets
  { "R21", { "<ok21@fake.test" }, { "501" } },
  { "R22", { "ok22@fake.test>" }, { "501" } },
  { "R23", { "<<ok23@fake.test>>" }, { "501" } },
  { "R24", { "<ok24@fake.test>>" }, { "501" } },
  { "R25", { "<ok<25@fake.test>" }, { "501" } },
  { "R26", { "<" }, { "501" } },
  { "R27", { ">" }, { "501" } },
  -- quoted local parts: valid ones are looked up as given (the fake knows only ok*)
  { "R28", { '<"john doe"@fake.test>' }, { "550" } },
  { "R29", { '<"a@b"@fake.test>' }, { "550" } },
  { "R30", { '<"a\\"b"@fake.test>' }, { "550" } },
  { "R31", { '<"unterminated@fake.test>' }, { "501" } },
  { "R32", { '<"a"b"@fake.test>' }, { "501" } },
  -- UTF-8: valid is a defined answer; invalid (bad lead byte, overlong, surrogate, > U+10FFFF) is 501
  { "R33", { "<okü33@fake.test>" }, { "553" } },  -- 553 5.6.7: the fake offers no SMTPUTF8
  { "R34", { "<ok34@fäke.test>" }, { "accept" } },           -- not a validated domain
  { "R35", { "<ok35\255@fake.test>" }, { "501" } },
  { "R36", { "<ok36\192\175@fake.test>" }, { "501" } },
  { "R37", { "<ok37\237\160\128@fake.test>" }, { "501" } },
  { "R38", { "<ok38\244\144\128\128@fake.test>" }, { "501" } },
  { "R39", { "<ok39\224\128\175@fake.test>" }, { "501" } },
  -- without brackets, source routes, address literals: defined answers
  { "R40", { "ok40@fake.test" }, { "accept" } },
  { "R41", { "<@relay.example:ok41@fake.test>" }, { "accept" } },
  { "R43", { "<ok43@[127.0.0.1]>" }, { "accept" } },
  { "R44", { "<ok44@[127.0.0.1\r\nRSET]>" }, { "501" } },
  -- a plain, known and unknown recipient: the baseline still works
  { "R45", { "<ok45@fake.test>" }, { "accept" } },
  { "R46", { "<nobody46@fake.test>" }, { "550" } },
  -- no domain: only <Postmaster> (any case, accepted without a lookup); the rest is 501 (issue 14)
  { "R47", { "<test>" }, { "501" } },
  { "R48", { "ok48" }, { "501" } },
  { "R49", { '<"ok49">' }, { "501" } },
  { "R50", { "<Postmaster>" }, { "accept" } },
  { "R51", { "<pOSTMASTER>" }, { "accept" } },
  -- a quoted-pair escapes printable ASCII only
  { "R52", { '<"ok52\\\194\169"@fake.test>' }, { "501" } },
  { "R53", { '<"ok53\\ x"@fake.test>' }, { "550" } },
  -- C1 controls, bidi overrides and isolates, zero-width and line separators
  { "R54", { "<ok54\194\133@fake.test>" }, { "501" } },                  -- U+0085 (NEL)
  { "R55", { "<ok55\226\128\174gpj.exe@fake.test>" }, { "501" } },       -- U+202E
  { "R56", { "<ok56\226\129\166x\226\129\169@fake.test>" }, { "501" } }, -- U+2066, U+2069
  { "R57", { "<ok\226\128\13957@fake.test>" }, { "501" } },              -- U+200B
  { "R58", { "<ok58\226\128\168@fake.test>" }, { "501" } },              -- U+2028
  { "R59", { "<ok59@fa\226\128\141ke.test>" }, { "501" } },              -- U+200D in the domain
}

local mail_cases = {
  { "M01", { "<s@example.net>\r\nRCPT TO:<inject-m1@fake.test>" }, "501" },
  { "M02", { "<s@example.net>\nRSET" }, "501" },
  { "M04", { "<s\1@example.net>" }, "501" },
  { "M05", { "<s@example.net", "RCPT TO:<inject-m5@fake.test>>" }, "501" },
  { "M06", { "<>" }, "continue" },
  { "M07", { "<s@example.net" }, "501" },
  { "M08", { "<s\237\160\128@example.net>" }, "501" },
  { "M09", { "<s@example.net>", "MT-PRIORITY=3\r\nRCPT TO:<inject-m9@fake.test>" }, "continue" },
  { "M10", { "<sü@example.net>" }, "continue" },
}

-- Smuggling attempts inside the message: none may become a command on the remote.
local smuggle_body =
  "line one\r\n" ..
  "\n.\nMAIL FROM:<smuggle-lf@evil.example>\nRCPT TO:<smuggle-lf@fake.test>\nDATA\n" ..
  "\r\n.\r\nMAIL FROM:<smuggle-crlf@evil.example>\r\nRCPT TO:<smuggle-crlf@fake.test>\r\nDATA\r\n" ..
  "\r\n.\nMAIL FROM:<smuggle-mixed@evil.example>\r\n" ..
  ".\r\nRSET\r\n..\r\n" ..
  "last line without a line end"

-- 10,000 header fields, some forged routing headers, one smuggling attempt in a value.
local function many_headers(conn, n)
  for i = 1, n do
    local name, value = "X-Filler-" .. i, "value " .. i
    if i % 100 == 0 then
      name, value = "X-Nexthop", "forged-" .. i
    elseif i == 5001 then
      name, value = "X-Smuggle", "v\r\n.\r\nMAIL FROM:<smuggle-hdr@evil.example>\r\nRCPT TO:<smuggle-hdr@fake.test>"
    end
    lib.check(mt.header(conn, name, value) == nil, "header " .. i)
    lib.expect(conn, SMFIR_CONTINUE, "header " .. i)
  end
end

lib.run(function()
  local conn = lib.connect()
  lib.check(mt.conninfo(conn, "client.example.net", "192.0.2.7") == nil, "conninfo")
  lib.expect(conn, SMFIR_CONTINUE, "connect")
  -- a HELO name that tries to inject a command: it is no host name, so Received: says "unknown"
  lib.check(mt.helo(conn, "client.example.net\r\nMAIL FROM:<inject-helo@evil.example>") == nil, "helo")
  lib.expect(conn, SMFIR_CONTINUE, "helo")

  for _, c in ipairs(rcpt_cases) do rcpt_case(conn, c[1], c[2], c[3]) end
  for _, qid in ipairs({ "R47", "R48", "R49", "R50", "R51" }) do
    if count_lines("lookup: queue=" .. qid .. " ") ~= 0 then failed(qid .. ": a recipient without a domain was looked up") end
  end

  -- a queue id macro holding a bidi override and a C1 control reaches the log escaped
  local evil_qid = "E\226\128\174" .. "01\194\155"
  new_message(conn, evil_qid)
  mt.macro(conn, SMFIC_RCPT, "i", evil_qid)
  lib.check(mt.rcptto(conn, "<nobody-e01@fake.test>") == nil, "rcptto E01: no answer from the milter")
  lib.check(mt.getreply(conn) == SMFIR_REPLYCODE, "E01: an unknown recipient was not refused")
  mt.abort(conn)
  local escaped = count_lines(": rcpt: queue=E\\u202e01\\u009b ")
  local raw = count_lines("\226\128\174") + count_lines("\194\155")
  if escaped == 1 and raw == 0 then
    mt.echo("PASS: a bidi override and a C1 control in a macro are escaped in the log")
  else
    failed("macro with U+202E/U+009B: " .. escaped .. " escaped line(s), " .. raw .. " raw one(s) in the log")
  end
  for _, c in ipairs(mail_cases) do mail_case(conn, c[1], c[2], c[3]) end

  -- a relayed message with 10,000 header fields and smuggling attempts
  new_message(conn, "HDR")
  mt.macro(conn, SMFIC_RCPT, "i", "HDR")
  lib.check(mt.rcptto(conn, "<ok-relay@fake.test>") == nil, "rcptto ok-relay")
  lib.expect(conn, SMFIR_CONTINUE, "rcpt ok-relay")
  many_headers(conn, 10000)
  lib.check(mt.eoh(conn) == nil, "eoh")
  lib.expect(conn, SMFIR_CONTINUE, "eoh")
  lib.check(mt.bodystring(conn, smuggle_body) == nil, "body")
  lib.expect(conn, SMFIR_CONTINUE, "body")
  lib.check(mt.eom(conn) == nil, "eom: no answer from the milter")
  local r = mt.getreply(conn)
  -- relayed to the one recipient, so the MTA's copy loses it (the copy goes on: it may
  -- hold recipients the MTA added itself)
  if r == SMFIR_CONTINUE and mt.eom_check(conn, MT_RCPTDELETE, "<ok-relay@fake.test>") then
    mt.echo("PASS: 10,000 headers relayed, the recipient deleted from the MTA copy")
  else
    failed("10,000 headers: eom reply " .. tostring(r) .. ", wanted continue with the relayed recipient deleted")
  end
  mt.disconnect(conn)

  -- still answering on a new connection
  conn = lib.connect()
  lib.start(conn)
  lib.rcpt(conn, "<ok-final@fake.test>")
  mt.disconnect(conn)
  mt.echo("PASS: the milter answers a new connection afterwards")

  if #failures > 0 then
    error(#failures .. " hostile-input case(s) failed: " .. table.concat(failures, "; "))
  end
end)
