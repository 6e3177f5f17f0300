-- wrk script of tools/bench_turns.py: whole demo calls, in order.
--
--   wrk -t 20 -c 20 -d 5s -s tools/bench_turns.lua http://127.0.0.1:8080 -- \
--       nonce=0123abcd "step=/voice/post_sale " "step=/voice/post_sale?turn=1 Digits=1" ...
--
-- Run it with as many threads as connections: each thread then owns one
-- connection and one Lua state, so a thread plays one call at a time and
-- the turns of a call go out in order, each only after the answer to the
-- one before.  Every call gets a fresh Twilio-shaped CallSid: "CA", the
-- run's 8 hex digits (nonce=), the thread's number in 4 and the thread's
-- call count in 20.  A step ("step=PATH PARAMS") is one POST; a call is
-- counted done when the next one starts (the last call of each thread is
-- not counted).  A request lost to a socket error is counted by wrk as an
-- error and the call goes on.  done() prints one line, "BENCH {json}".

local steps = {}
local nonce = "00000000"
local threads = {}

function setup(thread)
   table.insert(threads, thread)
   thread:set("thread_number", #threads)
end

function init(args)
   for _, arg in ipairs(args) do
      local key, value = arg:match("^(%w+)=(.*)$")
      if key == "nonce" then
         nonce = value
      elseif key == "step" then
         local path, params = value:match("^(%S+) ?(.*)$")
         table.insert(steps, { path = path, params = params })
      elseif key == "period" then
         period_ms = tonumber(value)
      end
   end
   assert(#steps > 0, "no step= given")
   wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
   calls, started, step, call_sid = 0, 0, 1, nil
   -- wrk 4.1 calls request() once on the first thread's state to check
   -- it, before the run, and sends nothing of it: that thread's first
   -- call must not lose its first step to the check.
   checked = thread_number ~= 1
end

function request()
   -- One connection per thread and no pipelining: wrk asks for the next
   -- request only once the answer to the last one is in, so the call
   -- moves on here.  (A response() hook would do the same, but makes wrk
   -- hand every answer's headers and body to Lua: with one, the bare
   -- resource reached 0.76 of its rate under a fixed POST, without 0.92.)
   if not checked then
      checked = true
      return wrk.format("POST", steps[1].path, nil, "")
   end
   if step > #steps then
      calls, step = calls + 1, 1
   end
   if step == 1 then
      started = started + 1
      call_sid = string.format("CA%s%04x%020d", nonce, thread_number, started)
   end
   local current = steps[step]
   step = step + 1
   local body = "CallSid=" .. call_sid .. "&From=%2B33612345678&To=%2B33100000000"
   if current.params ~= "" then
      body = body .. "&" .. current.params
   end
   return wrk.format("POST", current.path, nil, body)
end

function done(summary, latency, requests)
   local finished = 0
   for _, thread in ipairs(threads) do
      finished = finished + thread:get("calls")
   end
   local errors = summary.errors
   io.write(string.format(
      'BENCH {"requests": %d, "seconds": %.6f, "calls": %d, "p50_ms": %.3f, "p99_ms": %.3f, '
         .. '"max_ms": %.3f, "errors": %d}\n',
      summary.requests, summary.duration / 1e6, finished,
      latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
      errors.connect + errors.read + errors.write + errors.status + errors.timeout))
end
