-- fetch: ack the ids given (if any), then move up to N ids from the head of a queue into this
-- broker's ack set and return them with their payloads (Dramatiq's `ack` and `fetch` in one
-- round trip: a consumer's pending acks ride on its next fetch).
--
-- KEYS[1]  <ns>:__heartbeats__                 zset of broker ids scored by last command (ms)
-- KEYS[2]  <ns>:<queue>                        list of redis message ids
-- KEYS[3]  <ns>:<queue>.msgs                   hash redis message id -> encoded message
-- KEYS[4]  <ns>:__acks__.<broker id>.<queue>   set of ids fetched and not yet acked by this broker
--
-- ARGV[1]  now, Unix ms
-- ARGV[2]  broker id of the caller
-- ARGV[3]  most ids to take
-- ARGV[4], ...  redis message ids to ack first (as the ack script does)
--
-- Returns a flat array id1, payload1, id2, payload2, ... in queue order. A payload is nil when
-- the id has no entry in the hash (Dramatiq #266); such an id is also removed from the ack set
-- so it does not linger, and the caller only logs it.

redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])

-- A payload is deleted only if its id was still in the ack set (a resent ack is harmless).
for i = 4, #ARGV do
  if redis.call('SREM', KEYS[4], ARGV[i]) == 1 then
    redis.call('HDEL', KEYS[3], ARGV[i])
  end
end

local want = tonumber(ARGV[3])
local out = {}
local ids = {}
for _ = 1, want do
  local id = redis.call('LPOP', KEYS[2])
  if not id then break end
  ids[#ids + 1] = id
end
if #ids == 0 then return out end

-- Chunks stay far below Lua's unpack limit (about 8000; Dramatiq #258, #433).
for first = 1, #ids, 1000 do
  local last = math.min(first + 999, #ids)
  local chunk = {}
  for i = first, last do chunk[#chunk + 1] = ids[i] end
  redis.call('SADD', KEYS[4], unpack(chunk))
  local payloads = redis.call('HMGET', KEYS[3], unpack(chunk))
  for i = 1, #chunk do
    local payload = payloads[i]
    if not payload then
      redis.call('SREM', KEYS[4], chunk[i])
    end
    out[#out + 1] = chunk[i]
    out[#out + 1] = payload
  end
end
return out
