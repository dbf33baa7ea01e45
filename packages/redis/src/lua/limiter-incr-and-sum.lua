-- limiter-incr-and-sum: add to the current window's counter unless the counter or the sum of
-- the whole window would pass a maximum (Dramatiq's RedisBackend.incr_and_sum, atomically).
--
-- KEYS[1]     the counter to increment (`<key>@<unix seconds>`)
-- KEYS[2..n]  every counter of the window (usually including KEYS[1])
--
-- ARGV[1]  amount to add
-- ARGV[2]  maximum for the counter and for amount + the window's sum
-- ARGV[3]  ttl, ms (set again on success)
--
-- Returns 1 if the counter was incremented, 0 if not.

local amount = tonumber(ARGV[1])
local maximum = tonumber(ARGV[2])
local value = tonumber(redis.call('GET', KEYS[1]) or '0') + amount
if value > maximum then return 0 end

local sum = amount
for i = 2, #KEYS do
  sum = sum + tonumber(redis.call('GET', KEYS[i]) or '0')
end
if sum > maximum then return 0 end

redis.call('SET', KEYS[1], string.format('%d', value), 'PX', ARGV[3])
return 1
