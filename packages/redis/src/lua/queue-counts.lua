-- queue-counts: how many messages a queue holds, counted atomically (a tq addition, for
-- `queueCounts()`: metrics and operations tools).
--
-- KEYS[1]  <ns>:__heartbeats__   zset of broker ids scored by last command (ms)
-- KEYS[2]  <ns>:<q>              list of redis message ids waiting (ready)
-- KEYS[3]  <ns>:<q>.DQ           list of ids of the delay queue
-- KEYS[4]  <ns>:<q>.XQ           dead-letter zset
--
-- ARGV[1]  now, Unix ms
-- ARGV[2]  broker id of the caller
-- ARGV[3]  namespace (ack sets are `<ns>:__acks__.<broker id>.<queue>`)
-- ARGV[4]  the canonical queue name
--
-- Running messages are those in the ack sets of `<q>` and `<q>.DQ` of every broker in the
-- heartbeats (tq and Dramatiq workers alike, dead ones included until maintenance requeues
-- what they held): two SCARDs per broker, so the work grows with the number of brokers, not
-- with the number of keys or messages.
-- Returns {ready, delayed, dead, running}.

redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])

local prefix = ARGV[3] .. ':__acks__.'
local running = 0
for _, broker in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local acks = prefix .. broker .. '.' .. ARGV[4]
  running = running + redis.call('SCARD', acks) + redis.call('SCARD', acks .. '.DQ')
end

return {redis.call('LLEN', KEYS[2]), redis.call('LLEN', KEYS[3]), redis.call('ZCARD', KEYS[4]), running}
