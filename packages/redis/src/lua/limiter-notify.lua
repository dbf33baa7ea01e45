-- limiter-notify: record a notification for barrier waiters (Dramatiq's
-- RedisBackend.wait_notify: RPUSH "x" and PEXPIRE, in one atomic step here).
--
-- KEYS[1]  the events list (`<barrier key>@events`); waiters BRPOPLPUSH it onto itself
--
-- ARGV[1]  ttl of the list, ms
--
-- Returns the list's length.

local length = redis.call('RPUSH', KEYS[1], 'x')
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return length
