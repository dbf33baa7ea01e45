-- maintenance: requeue what dead workers held from one queue and expire old dead letters
-- (Dramatiq's maintenance step, run with probability maintenanceChance / 1e6 per fetch).
--
-- KEYS[1]  <ns>:__heartbeats__               zset of broker ids scored by last command (ms)
-- KEYS[2]  <ns>:<queue>                      list of redis message ids (may be `<q>.DQ`)
-- KEYS[3]  <ns>:<queue>.msgs                 hash redis message id -> encoded message
-- KEYS[4]  <ns>:<canonical queue>.XQ         dead-letter zset scored by nack time (ms)
-- KEYS[5]  <ns>:<canonical queue>.XQ.msgs    dead-letter hash
--
-- ARGV[1]  now, Unix ms
-- ARGV[2]  broker id of the caller
-- ARGV[3]  namespace (ack sets of dead workers are `<ns>:__acks__.<dead id>.<queue>`)
-- ARGV[4]  queue name (as in KEYS[2], without the namespace)
-- ARGV[5]  heartbeat timeout, ms: a broker whose heartbeat is older is dead
-- ARGV[6]  dead message TTL, ms: dead letters older than this are deleted
-- ARGV[7]  wake-up channel to PUBLISH to when anything was requeued ('' = none)
--
-- A dead broker is dropped from the heartbeats once it has no ack set left in any queue.
-- Deletions go in chunks of 1000, well below Lua's unpack limit (Dramatiq #258, #433).
-- Returns {requeued, expired}.

local now = tonumber(ARGV[1])
redis.call('ZADD', KEYS[1], now, ARGV[2])

local function glob_escape(s)
  return (string.gsub(s, '[%*%?%[%]\\]', '\\%0'))
end

local requeued = 0
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], 0, '(' .. (now - tonumber(ARGV[5])))
for _, worker in ipairs(dead) do
  local prefix = ARGV[3] .. ':__acks__.' .. worker .. '.'
  local acks = prefix .. ARGV[4]
  for _, id in ipairs(redis.call('SMEMBERS', acks)) do
    if redis.call('HEXISTS', KEYS[3], id) == 1 then
      redis.call('RPUSH', KEYS[2], id)
      requeued = requeued + 1
    end
  end
  redis.call('DEL', acks)
  if #redis.call('KEYS', glob_escape(prefix) .. '*') == 0 then
    redis.call('ZREM', KEYS[1], worker)
  end
end
if requeued > 0 and ARGV[7] ~= '' then
  redis.call('PUBLISH', ARGV[7], requeued)
end

local expired = redis.call('ZRANGEBYSCORE', KEYS[4], 0, '(' .. (now - tonumber(ARGV[6])))
for first = 1, #expired, 1000 do
  local chunk = {}
  for i = first, math.min(first + 999, #expired) do chunk[#chunk + 1] = expired[i] end
  redis.call('ZREM', KEYS[4], unpack(chunk))
  redis.call('HDEL', KEYS[5], unpack(chunk))
end

return {requeued, #expired}
