-- tracking-list: read one index newest first from a cursor, up to a number of entries, and
-- return the records that pass the exact filters (queue, actor, state). The text search is left
-- to the caller (JavaScript's case folding, on the arguments' JSON).
--
-- No KEYS (the keys are built from the prefix: see tracking-common.lua).
-- ARGV[1]  prefix P
-- ARGV[2]  the index to read (P:all, P:q:<queue>, P:a:<actor> or P:s:<state>)
-- ARGV[3]  cursor score: start after the entry (ARGV[3], ARGV[4]); '' = from the newest
-- ARGV[4]  cursor id
-- ARGV[5]  most entries to scan
-- ARGV[6]  'full': return whole records, stopping at ARGV[7] of them (and one more match, to
--          tell whether more follow); 'search': return the fields the search reads, of every
--          match
-- ARGV[7]  records wanted ('full' mode)
-- ARGV[8]  '1' to filter on the queue ARGV[9]
-- ARGV[10] '1' to filter on the actor ARGV[11]
-- ARGV[12] '1' to filter on the state ARGV[13]
--
-- Returns {scanned, exhausted (1: nothing after the last entry scanned), more (1: a match
-- follows the last record returned), last score, last id (the last entry scanned), entries},
-- each entry {id, score, the record's HGETALL} ('full') or {id, score, state, queue, actor,
-- args, kwargs} ('search'). An entry whose record is gone (expired) is skipped and forgotten; a
-- key that is not a hash is skipped.

local P, index = ARGV[1], ARGV[2]
local budget = tonumber(ARGV[5])
local full = ARGV[6] == 'full'
local wanted = tonumber(ARGV[7])
local want_queue = ARGV[8] == '1' and ARGV[9]
local want_actor = ARGV[10] == '1' and ARGV[11]
local want_state = ARGV[12] == '1' and ARGV[13]
local fields = full and {'state', 'queue', 'actor'} or {'state', 'queue', 'actor', 'args', 'kwargs'}
local STEP = 200

-- Byte order, as zsets order members of equal score (Lua's `<` follows the server's locale).
local function before(a, b)
  for k = 1, math.min(#a, #b) do
    local x, y = string.byte(a, k), string.byte(b, k)
    if x ~= y then return x < y end
  end
  return #a < #b
end

-- The rank (newest first, from 0) of the first entry after the cursor (score, id). The cursor's
-- own entry may be gone: then search the entries of its score (member bytes descending).
local function start_rank()
  if ARGV[3] == '' then return 0 end
  local score, id = ARGV[3], ARGV[4]
  local current = redis.call('ZSCORE', index, id)
  if current and tonumber(current) == tonumber(score) then return redis.call('ZREVRANK', index, id) + 1 end
  local lo = redis.call('ZCOUNT', index, '(' .. score, '+inf')
  local hi = lo + redis.call('ZCOUNT', index, score, score)
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if before(redis.call('ZREVRANGE', index, mid, mid)[1], id) then hi = mid else lo = mid + 1 end
  end
  return lo
end

local pos = start_rank()
local scanned, more, matched = 0, 0, 0
local last_score, last_id = '', ''
local entries, gone = {}, {}
while scanned < budget do
  local n = math.min(STEP, budget - scanned)
  local page = redis.call('ZREVRANGE', index, pos, pos + n - 1, 'WITHSCORES')
  for j = 1, #page, 2 do
    local id, score = page[j], page[j + 1]
    local key = P .. ':m:' .. id
    local f = redis.pcall('HMGET', key, unpack(fields))
    if not f.err then
      if not f[1] and redis.call('EXISTS', key) == 0 then
        gone[#gone + 1] = id
      elseif (not want_state or f[1] == want_state) and (not want_queue or f[2] == want_queue)
        and (not want_actor or f[3] == want_actor) then
        if full and matched >= wanted then
          more = 1
          break
        end
        matched = matched + 1
        if full then
          entries[#entries + 1] = {id, score, redis.call('HGETALL', key)}
        else
          entries[#entries + 1] = {id, score, f[1], f[2], f[3], f[4], f[5]}
        end
      end
    end
    scanned = scanned + 1
    last_score, last_id = score, id
  end
  if more == 1 then break end
  pos = pos + #page / 2
  if #page < 2 * n then break end
end
local exhausted = (more == 0 and pos >= redis.call('ZCARD', index)) and 1 or 0
-- Forgotten last: the ranks above are those of the index as it was.
for _, id in ipairs(gone) do forget(P, id) end
return {scanned, exhausted, more, last_score, last_id, entries}
