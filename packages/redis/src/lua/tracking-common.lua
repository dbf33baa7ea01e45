-- tracking-common: what every tracking script starts with (prepended to tracking-write,
-- tracking-list and tracking-delete when they are loaded).
--
-- The layout under a prefix P (ARGV[1] of every tracking script; `tq-tracking` by default, never
-- Dramatiq's namespace). Keys are built here from P, as Dramatiq's scripts build theirs from the
-- namespace, so the scripts are not Redis Cluster-safe.
--
--   P:m:<id>      hash: the record of one message (its fields: see tracking-write.lua). Its
--                 queue, actor and state fields name the three indexes below that hold the id.
--   P:all         zset id -> enqueuedAt: every record
--   P:q:<queue>   zset id -> enqueuedAt: the records of one queue
--   P:a:<actor>   zset id -> enqueuedAt: the records of one actor
--   P:s:<state>   zset id -> enqueuedAt: the records in one state, for the states that are
--                 rare among many records (not queued nor succeeded: those two states change
--                 on every message, and a listing finds them by scanning P:all, P:q or P:a)
--   P:where       hash id -> cjson [queue, actor]: the queue and actor indexes that hold the id,
--                 written when they change (not on state changes), for a record whose hash is
--                 gone before the sweep reached it (its state index is then one of them all).
--   P:expiry      zset id -> when the record may go (Unix ms): what the sweep reads. Redis
--                 drops the hash itself a little later (see tracking-write.lua), so the sweep
--                 finds it and reads its indexes off it.
--
-- Listings read one index newest first: by score, then member bytes descending.

local STATES = {'queued', 'delayed', 'running', 'retrying', 'succeeded', 'failed', 'dead', 'cancelled', 'skipped'}
-- States without a P:s index (keep in step with UNINDEXED_STATES in tracking/backend.ts).
local UNINDEXED = {queued = true, succeeded = true}
-- How far along in a message's life a state is (keep in step with STATE_RANK in apply.ts).
local STATE_RANK = {queued = 0, delayed = 0, running = 1, retrying = 2, succeeded = 3, failed = 3, dead = 3,
  cancelled = 3, skipped = 3}

-- The queue and actor of `id` by P:where (nil when there is no entry, or it is unreadable).
local function read_where(P, id)
  local raw = redis.call('HGET', P .. ':where', id)
  if not raw then return nil end
  local ok, where = pcall(cjson.decode, raw)
  if ok and type(where) == 'table' and type(where[1]) == 'string' and type(where[2]) == 'string' then
    return where
  end
  return nil
end

-- Remove a message: its record, its index entries, its bookkeeping.
local function forget(P, id)
  local key = P .. ':m:' .. id
  local f = redis.pcall('HMGET', key, 'state', 'queue', 'actor')
  if not f.err and f[1] then
    if not UNINDEXED[f[1]] then redis.call('ZREM', P .. ':s:' .. f[1], id) end
    redis.call('ZREM', P .. ':q:' .. (f[2] or ''), id)
    redis.call('ZREM', P .. ':a:' .. (f[3] or ''), id)
  else
    -- No record to read (Redis dropped it, or the key is not one): P:where names its queue and
    -- actor indexes, its state index is one of them all.
    local where = read_where(P, id)
    if where then
      redis.call('ZREM', P .. ':q:' .. where[1], id)
      redis.call('ZREM', P .. ':a:' .. where[2], id)
    end
    for _, state in ipairs(STATES) do redis.call('ZREM', P .. ':s:' .. state, id) end
  end
  redis.call('HDEL', P .. ':where', id)
  redis.call('ZREM', P .. ':all', id)
  redis.call('ZREM', P .. ':expiry', id)
  redis.call('DEL', key)
end
