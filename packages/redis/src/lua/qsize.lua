-- qsize: the work left on a queue and its delay queue, counted atomically (Dramatiq's `qsize`;
-- counting both at once avoids the race of Dramatiq #480). Only ever compared with 0.
--
-- KEYS[1]  <ns>:__heartbeats__                    zset of broker ids scored by last command (ms)
-- KEYS[2]  <ns>:<q>.msgs                          payloads of the queue (waiting and in flight)
-- KEYS[3]  <ns>:__acks__.<broker id>.<q>          this broker's ack set for the queue
-- KEYS[4]  <ns>:<q>.DQ.msgs                       payloads of the delay queue
-- KEYS[5]  <ns>:__acks__.<broker id>.<q>.DQ       this broker's ack set for the delay queue
--
-- ARGV[1]  now, Unix ms
-- ARGV[2]  broker id of the caller
--
-- Returns HLEN + SCARD + HLEN + SCARD.

redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
return redis.call('HLEN', KEYS[2]) + redis.call('SCARD', KEYS[3])
  + redis.call('HLEN', KEYS[4]) + redis.call('SCARD', KEYS[5])
