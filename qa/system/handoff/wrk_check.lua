-- wrk script for the offload lab: alternates an offloaded GET and a local GET on
-- every keep-alive connection and checks each body byte for byte against the
-- expected content (files written by the test: <dir>/off.bin, <dir>/local.bin).
-- args: off_path local_path dir
local off_path, local_path, expect_off, expect_local
local counts = {}

function init(args)
  off_path, local_path = args[1], args[2]
  local f = assert(io.open(args[3] .. "/off.bin", "rb")); expect_off = f:read("*a"); f:close()
  f = assert(io.open(args[3] .. "/local.bin", "rb")); expect_local = f:read("*a"); f:close()
  next_off = true
  ok, bad, by_backend, by_frontend = 0, 0, 0, 0
end

function request()
  local path = next_off and off_path or local_path
  next_off = not next_off
  return wrk.format("GET", path)
end

function response(status, headers, body)
  -- The two bodies differ in size, so the body says which request this was.
  local by = headers["X-Served-By"] or ""
  local good_off = body == expect_off and by ~= "frontend"
  local good_local = body == expect_local and by == "frontend"
  if status == 200 and (good_off or good_local) then
    ok = ok + 1
  else
    bad = bad + 1
  end
  if by == "frontend" then by_frontend = by_frontend + 1 else by_backend = by_backend + 1 end
end

-- Each thread's counters are read back in done() through wrk's thread objects.
function setup(thread)
  table.insert(counts, thread)
end

function done(summary, latency, requests)
  local tok, tbad, tb, tf = 0, 0, 0, 0
  for _, t in ipairs(counts) do
    tok = tok + t:get("ok"); tbad = tbad + t:get("bad")
    tb = tb + t:get("by_backend"); tf = tf + t:get("by_frontend")
  end
  io.write(string.format("check ok %d bad %d backend %d frontend %d errors %d %d %d %d %d\n", tok, tbad, tb, tf,
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.status,
    summary.errors.timeout))
end
