-- requeue: give fetched messages back to the tail of their queue (Dramatiq's `requeue`).
--
-- KEYS[1]  <ns>:__heartbeats__                 zset of broker ids scored by last command (ms)
-- KEYS[2]  <ns>:__acks__.<broker id>.<queue>   this broker's ack set for the queue
-- KEYS[3]  <ns>:<queue>                        list of redis message ids
-- KEYS[4]  <ns>:<queue>.msgs                   hash redis message id -> encoded message
--
-- ARGV[1]  now, Unix ms
-- ARGV[2]  broker id of the caller
-- ARGV[3]  wake-up channel to PUBLISH to when anything was requeued ('' = none)
-- ARGV[4], ...  redis message ids
--
-- An id goes back only if it was still in the ack set and its payload still exists.
-- Returns the number of ids requeued.

redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])

local requeued = 0
for i = 4, #ARGV do
  local id = ARGV[i]
  if redis.call('SREM', KEYS[2], id) == 1 and redis.call('HEXISTS', KEYS[4], id) == 1 then
    redis.call('RPUSH', KEYS[3], id)
    requeued = requeued + 1
  end
end
if requeued > 0 and ARGV[3] ~= '' then
  redis.call('PUBLISH', ARGV[3], requeued)
end
return requeued
