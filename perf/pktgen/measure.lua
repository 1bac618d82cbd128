-- Runs for N seconds and prints tx and rx packets per second of ports 0 and 1, from
-- pktgen.portStats(ports, "port") (cumulative counters; pktgen 23.06's Lua API). Load a
-- command file first (syn-range.pkt, udp-range.pkt or imix.pkt) with -f, then at the
-- prompt:  load perf/pktgen/measure.lua
-- One-arm (dr/tun): what ferrovs forwards comes back on port 0 when the backends' MAC
-- in ferrovs's neighbors is pktgen's own port 0. Two ports (nat): backends' MAC is
-- port 1, so port 1's rx is ferrovs's output.
local seconds = 10
local function snap()
  local t = pktgen.portStats("0-1", "port")
  local s = {}
  for pid = 0, (t.n or 1) - 1 do
    s[pid] = { tx = t[pid].opackets, rx = t[pid].ipackets }
  end
  return s
end
local a = snap()
pktgen.delay(seconds * 1000)
local b = snap()
for pid, v in pairs(b) do
  print(string.format("port %d: tx %.2f Mpps, rx %.2f Mpps", pid,
    (v.tx - a[pid].tx) / seconds / 1e6, (v.rx - a[pid].rx) / seconds / 1e6))
end
