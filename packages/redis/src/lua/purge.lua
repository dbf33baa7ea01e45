-- purge: drop a queue, this broker's ack set for it and the canonical queue's dead letters
-- (Dramatiq's `purge`).
--
-- KEYS[1]  <ns>:__heartbeats__                 zset of broker ids scored by last command (ms)
-- KEYS[2]  <ns>:<queue>                        list of redis message ids
-- KEYS[3]  <ns>:__acks__.<broker id>.<queue>   this broker's ack set for the queue
-- KEYS[4]  <ns>:<queue>.msgs                   hash redis message id -> encoded message
-- KEYS[5]  <ns>:<canonical queue>.XQ           dead-letter zset
-- KEYS[6]  <ns>:<canonical queue>.XQ.msgs      dead-letter hash
--
-- ARGV[1]  now, Unix ms
-- ARGV[2]  broker id of the caller
--
-- Returns the number of keys deleted.

redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
return redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
