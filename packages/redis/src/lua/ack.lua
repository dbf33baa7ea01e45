-- ack: forget messages this broker has processed (Dramatiq's `ack`, batched).
--
-- KEYS[1]  <ns>:__heartbeats__                 zset of broker ids scored by last command (ms)
-- KEYS[2]  <ns>:__acks__.<broker id>.<queue>   this broker's ack set for the queue
-- KEYS[3]  <ns>:<queue>.msgs                   hash redis message id -> encoded message
--
-- ARGV[1]  now, Unix ms
-- ARGV[2]  broker id of the caller
-- ARGV[3], ...  redis message ids
--
-- A payload is deleted only if its id was still in the ack set, so acking twice (a resent
-- command) or acking an id that maintenance gave to another worker is harmless.
-- Returns the number of ids acked.

redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])

local acked = 0
for i = 3, #ARGV do
  if redis.call('SREM', KEYS[2], ARGV[i]) == 1 then
    redis.call('HDEL', KEYS[3], ARGV[i])
    acked = acked + 1
  end
end
return acked
