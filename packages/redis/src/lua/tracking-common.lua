-- tracking-common: what every tracking script starts with (prepended to tracking-write,
-- tracking-list and tracking-delete when they are loaded).
--
-- The layout under a prefix P (ARGV[1] of every tracking script; `tq-tracking` by default, never
-- Dramatiq's namespace). Keys are built here from P, as Dramatiq's scripts build theirs from the
-- namespace, so the scripts are not Redis Cluster-safe.
--
--   P:m:<id>      hash: the record of one message (its fields: see tracking-write.lua)
--   P:all         zset id -> enqueuedAt: every record
--   P:q:<queue>   zset id -> enqueuedAt: the records of one queue
--   P:a:<actor>   zset id -> enqueuedAt: the records of one actor
--   P:s:<state>   zset id -> enqueuedAt: the records in one state
--   P:where       hash id -> cjson [queue, actor, state]: the three indexes above that hold the id.
--                 It outlives a record that Redis expired until the sweep reaches it, so the
--                 record's index entries can still be found and removed.
--   P:expiry      zset id -> when the record expires (Unix ms): what the sweep reads
--
-- Listings read one index newest first: by score, then member bytes descending.

local function index_keys(P, where)
  return {P .. ':q:' .. where[1], P .. ':a:' .. where[2], P .. ':s:' .. where[3]}
end

-- The indexes holding `id` (nil when none, or when the entry is unreadable).
local function read_where(P, id)
  local raw = redis.call('HGET', P .. ':where', id)
  if not raw then return nil end
  local ok, where = pcall(cjson.decode, raw)
  if ok and type(where) == 'table' and type(where[1]) == 'string' and type(where[2]) == 'string'
    and type(where[3]) == 'string' then
    return where
  end
  return nil
end

-- Remove a message: its record, its index entries, its bookkeeping.
local function forget(P, id)
  local where = read_where(P, id)
  if where then
    for _, key in ipairs(index_keys(P, where)) do redis.call('ZREM', key, id) end
  end
  redis.call('HDEL', P .. ':where', id)
  redis.call('ZREM', P .. ':all', id)
  redis.call('ZREM', P .. ':expiry', id)
  redis.call('DEL', P .. ':m:' .. id)
end
