-- nack: dead-letter messages this broker fetched (Dramatiq's `nack`, batched).
--
-- KEYS[1]  <ns>:__heartbeats__                 zset of broker ids scored by last command (ms)
-- KEYS[2]  <ns>:__acks__.<broker id>.<queue>   this broker's ack set for the queue
-- KEYS[3]  <ns>:<queue>.msgs                   hash redis message id -> encoded message
-- KEYS[4]  <ns>:<canonical queue>.XQ           zset of dead-lettered ids scored by nack time (ms)
-- KEYS[5]  <ns>:<canonical queue>.XQ.msgs      hash dead-lettered id -> encoded message
--
-- ARGV[1]  now, Unix ms (also the dead-letter score)
-- ARGV[2]  broker id of the caller
-- ARGV[3], ...  redis message ids
--
-- The dead letter keeps the payload as it was last written to Redis. The XQ is always the
-- canonical queue's, also when nacking from `<q>.DQ`.
-- Returns the number of ids dead-lettered.

redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])

local dead = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  if redis.call('SREM', KEYS[2], id) == 1 then
    local payload = redis.call('HGET', KEYS[3], id)
    if payload then
      redis.call('ZADD', KEYS[4], ARGV[1], id)
      redis.call('HSET', KEYS[5], id, payload)
      redis.call('HDEL', KEYS[3], id)
      dead = dead + 1
    end
  end
end
return dead
