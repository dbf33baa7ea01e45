-- reconcile: after a lost connection, requeue ids that sit in this broker's ack set but that
-- the consumer does not hold (a fetch whose reply was lost). tq addition; Dramatiq has none.
--
-- KEYS[1]  <ns>:__heartbeats__                 zset of broker ids scored by last command (ms)
-- KEYS[2]  <ns>:__acks__.<broker id>.<queue>   this broker's ack set for the queue
-- KEYS[3]  <ns>:<queue>                        list of redis message ids
-- KEYS[4]  <ns>:<queue>.msgs                   hash redis message id -> encoded message
--
-- ARGV[1]  now, Unix ms
-- ARGV[2]  broker id of the caller
-- ARGV[3]  wake-up channel to PUBLISH to when anything was requeued ('' = none)
-- ARGV[4], ...  redis message ids the consumer holds (delivered, not yet acked or nacked)
--
-- Returns the number of ids requeued.

redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])

local held = {}
for i = 4, #ARGV do held[ARGV[i]] = true end

local requeued = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if not held[id] then
    redis.call('SREM', KEYS[2], id)
    if redis.call('HEXISTS', KEYS[4], id) == 1 then
      redis.call('RPUSH', KEYS[3], id)
      requeued = requeued + 1
    end
  end
end
if requeued > 0 and ARGV[3] ~= '' then
  redis.call('PUBLISH', ARGV[3], requeued)
end
return requeued
