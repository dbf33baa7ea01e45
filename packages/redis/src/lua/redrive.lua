-- redrive: move a batch of dead letters back to their canonical queue, then read the next batch
-- of the oldest ones (a tq addition, for `redriveDeadLetters()`). The caller decodes each dead
-- letter it read and sends it back re-encoded (retry count reset, due now) under a new redis
-- message id, as any enqueue would write it.
--
-- KEYS[1]  <ns>:__heartbeats__   zset of broker ids scored by last command (ms)
-- KEYS[2]  <ns>:<q>.XQ           zset of dead-lettered ids scored by dead-letter time (ms)
-- KEYS[3]  <ns>:<q>.XQ.msgs      hash dead-lettered id -> encoded message
-- KEYS[4]  <ns>:<q>              list of redis message ids (the canonical queue)
-- KEYS[5]  <ns>:<q>.msgs         hash redis message id -> encoded message
--
-- ARGV[1]  now, Unix ms
-- ARGV[2]  broker id of the caller
-- ARGV[3]  wake-up channel to PUBLISH to when the queue was empty before this call ('' = none)
-- ARGV[4]  offset of the next batch to read in the dead-letter zset (dead letters left in place
--          ahead of it: undecodable ones)
-- ARGV[5]  most dead letters to read after the move (0: move only)
-- ARGV[6], ARGV[7], ARGV[8], ...  triples of (dead-lettered id, new redis message id, encoded
--          message for the queue)
--
-- The whole batch moves at once: each dead letter is in the dead-letter queue or in the queue,
-- never in neither nor in both. A dead letter no longer in the zset (someone else redrove,
-- flushed or expired it since it was read) is skipped; so is one whose new id is taken (it
-- stays dead). A command resent after a lost reply moves nothing twice: it finds each dead
-- letter gone and its new id in the queue's hash, and reports it moved, as the first run did.
-- Returns {moved, dead, batch}: `moved` holds 1 (moved) or 0 (skipped) per triple in order,
-- `dead` the size of the zset after the move, `batch` the flat array id1, payload1, id2,
-- payload2, ... of the next dead letters, oldest first (a payload is nil when the hash lacks it).

redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])

local moved = {}
local ids = {}
for i = 6, #ARGV, 3 do
  local id = ARGV[i]
  local flag = 0
  if redis.call('ZSCORE', KEYS[2], id) then
    if redis.call('HSETNX', KEYS[5], ARGV[i + 1], ARGV[i + 2]) == 1 then
      redis.call('ZREM', KEYS[2], id)
      redis.call('HDEL', KEYS[3], id)
      ids[#ids + 1] = ARGV[i + 1]
      flag = 1
    end
  elseif redis.call('HEXISTS', KEYS[5], ARGV[i + 1]) == 1 then
    -- Moved by an earlier run of this same command (resent after a lost reply): count it.
    flag = 1
  end
  moved[#moved + 1] = flag
end

-- Chunks stay far below Lua's unpack limit (about 8000; Dramatiq #258, #433).
local before = -1
for first = 1, #ids, 1000 do
  local last = math.min(first + 999, #ids)
  local length = redis.call('RPUSH', KEYS[4], unpack(ids, first, last))
  if before < 0 then before = length - (last - first + 1) end
end
if #ids > 0 and before == 0 and ARGV[3] ~= '' then
  redis.call('PUBLISH', ARGV[3], #ids)
end

local batch = {}
local want = tonumber(ARGV[5])
if want > 0 then
  local offset = tonumber(ARGV[4])
  local next_ids = redis.call('ZRANGE', KEYS[2], offset, offset + want - 1)
  for first = 1, #next_ids, 1000 do
    local last = math.min(first + 999, #next_ids)
    local payloads = redis.call('HMGET', KEYS[3], unpack(next_ids, first, last))
    for j = first, last do
      batch[#batch + 1] = next_ids[j]
      batch[#batch + 1] = payloads[j - first + 1]
    end
  end
end

return {moved, redis.call('ZCARD', KEYS[2]), batch}
