-- enqueue: add messages to the tail of a queue (Dramatiq's `enqueue`, batched).
--
-- KEYS[1]  <ns>:__heartbeats__   zset of broker ids scored by their last command (ms)
-- KEYS[2]  <ns>:<queue>          list of redis message ids (the queue; may be `<q>.DQ`)
-- KEYS[3]  <ns>:<queue>.msgs     hash redis message id -> encoded message
--
-- ARGV[1]  now, Unix ms (the caller's clock, as Dramatiq)
-- ARGV[2]  broker id of the caller (heartbeat member)
-- ARGV[3]  wake-up channel to PUBLISH to when the list was empty before this call ('' = none)
-- ARGV[4], ARGV[5], ...  pairs of (redis message id, encoded message)
--
-- Writes each payload with HSETNX and pushes its id only if the id was new, so a command the
-- client resends after a reconnect does not enqueue the same message twice.
-- Returns the number of messages added.

redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])

local chunk = {}
local added = 0
local before = -1
for i = 4, #ARGV, 2 do
  if redis.call('HSETNX', KEYS[3], ARGV[i], ARGV[i + 1]) == 1 then
    chunk[#chunk + 1] = ARGV[i]
    if #chunk == 1000 then
      local len = redis.call('RPUSH', KEYS[2], unpack(chunk))
      if before < 0 then before = len - #chunk end
      added = added + #chunk
      chunk = {}
    end
  end
end
if #chunk > 0 then
  local len = redis.call('RPUSH', KEYS[2], unpack(chunk))
  if before < 0 then before = len - #chunk end
  added = added + #chunk
end

if added > 0 and before == 0 and ARGV[3] ~= '' then
  redis.call('PUBLISH', ARGV[3], added)
end
return added
