-- limiter-decr: subtract from a rate-limiter counter unless it would fall below a minimum
-- (Dramatiq's RedisBackend.decr, done atomically here instead of with a WATCH loop).
--
-- KEYS[1]  the counter (a decimal string; absent counts as 0). No namespace, as Dramatiq.
--
-- ARGV[1]  amount to subtract
-- ARGV[2]  minimum the new value may reach
-- ARGV[3]  ttl, ms (set again on success)
--
-- Returns 1 if the counter was decremented, 0 if not.

local value = tonumber(redis.call('GET', KEYS[1]) or '0') - tonumber(ARGV[1])
if value < tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[1], string.format('%d', value), 'PX', ARGV[3])
return 1
