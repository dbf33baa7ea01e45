-- promote: move a due delayed message from `<q>.DQ` to `<q>` and forget its delivery, in one
-- step (Dramatiq does an enqueue and then an ack, so a crash between the two ran the message
-- twice: Dramatiq #431).
--
-- KEYS[1]  <ns>:__heartbeats__                     zset of broker ids scored by last command (ms)
-- KEYS[2]  <ns>:__acks__.<broker id>.<q>.DQ       this broker's ack set for the delay queue
-- KEYS[3]  <ns>:<q>.DQ.msgs                       hash redis message id -> encoded message (delay queue)
-- KEYS[4]  <ns>:<q>                               list of redis message ids (the queue)
-- KEYS[5]  <ns>:<q>.msgs                          hash redis message id -> encoded message (the queue)
--
-- ARGV[1]  now, Unix ms
-- ARGV[2]  broker id of the caller
-- ARGV[3]  wake-up channel to PUBLISH to when the queue was empty ('' = none)
-- ARGV[4]  redis message id of the delivery in the delay queue
-- ARGV[5]  new redis message id for the queue
-- ARGV[6]  encoded message for the queue (without its eta)
--
-- Nothing is written unless the delivery is still in this broker's ack set: if maintenance
-- gave it to another worker (this one was presumed dead), that worker promotes it instead; and
-- a command resent after a lost reply finds it gone and does nothing.
-- Returns 1 when promoted, 0 when not.

redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])

if redis.call('SREM', KEYS[2], ARGV[4]) == 0 then
  return 0
end
redis.call('HDEL', KEYS[3], ARGV[4])
if redis.call('HSETNX', KEYS[5], ARGV[5], ARGV[6]) == 1 then
  local length = redis.call('RPUSH', KEYS[4], ARGV[5])
  if length == 1 and ARGV[3] ~= '' then
    redis.call('PUBLISH', ARGV[3], 1)
  end
end
return 1
