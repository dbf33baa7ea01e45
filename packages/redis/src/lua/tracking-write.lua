-- tracking-write: apply a batch of tracking updates (the semantics of @tq/core's `applyUpdate`),
-- then set expiries and sweep expired records. One call is atomic, so every message's updates
-- in it are applied together; the caller keeps all the updates of a message in one call.
--
-- No KEYS (the keys are built from the prefix: see tracking-common.lua).
-- ARGV[1]  prefix P
-- ARGV[2]  now, Unix ms (the writer's clock, as the update times)
-- ARGV[3]  retention, ms: a record expires this long after its last update (`updatedAt`)
-- ARGV[4]  most expired records to sweep
-- ARGV[5…] the updates, in order: a kind letter, the message id, `at` (Unix ms), then
--   e (enqueued)  actor, queue, state, args JSON, kwargs JSON ('' = undefined), argsTruncated
--                 ('1' / '0'), options JSON, eta ('' = none), body (bytes)
--   a (attempt)   attempt number, attempt JSON, its worker id, state ('' = none)
--   s (state)     state
--   p (progress)  progress JSON ('' = undefined)
--
-- Fields of P:m:<id>: state, stateAt (the `at` of the update that set it; absent = never set),
-- enqueuedAt, updatedAt, actor, queue, args, kwargs (JSON; absent = undefined), argsTruncated
-- ('1' / '0'), options (JSON), eta, workerId, progress (JSON), body (bytes), and a:<n> (the JSON
-- of attempt n). Numbers are kept as the writer sent them: Lua would round them to 14 digits.
--
-- Returns {records written, records swept}.

local P = ARGV[1]
local now = tonumber(ARGV[2])
local retention = tonumber(ARGV[3])
local sweep_limit = tonumber(ARGV[4])
-- Index keys outlive their newest record by this much (ms): they expire by themselves only when
-- the writes stop for good, since the sweep runs on writes.
local KEY_GRACE = 60000

local records, order = {}, {}

-- What an update needs of a stored record. A key that is not a hash is garbage: it is replaced.
local function load(id)
  local key = P .. ':m:' .. id
  local f = redis.pcall('HMGET', key, 'state', 'stateAt', 'enqueuedAt', 'updatedAt', 'actor', 'queue')
  if f.err then
    redis.call('DEL', key)
    f = {}
  end
  local r = {key = key, set = {}, del = {}, where = read_where(P, id), exists = f[1] ~= nil and f[1] ~= false}
  if r.exists then
    r.state, r.actor, r.queue = f[1], f[5] or '', f[6] or ''
    r.state_at = tonumber(f[2]) or -math.huge
    if tonumber(f[3]) then r.enq, r.enq_s, r.old_enq_s = tonumber(f[3]), f[3], f[3] end
    if tonumber(f[4]) then r.upd, r.upd_s = tonumber(f[4]), f[4] end
  end
  return r
end

local function put(r, field, value)
  r.set[field] = value
  r.del[field] = nil
end

local function drop(r, field)
  r.set[field] = nil
  r.del[field] = true
end

-- Every update: start a (partial) record if there is none, move updatedAt forward.
local function touch(r, at, at_s)
  if not r.exists then
    r.exists = true
    r.state, r.state_at, r.actor, r.queue = 'queued', -math.huge, '', ''
    put(r, 'state', 'queued')
    put(r, 'actor', '')
    put(r, 'queue', '')
  end
  if not r.enq then r.enq, r.enq_s = at, at_s end
  if not r.upd or at > r.upd then r.upd, r.upd_s = at, at_s end
end

-- A state replaces the current one unless that one was set by a newer update.
local function set_state(r, at, at_s, state)
  if at < r.state_at then return false end
  r.state, r.state_at = state, at
  put(r, 'state', state)
  put(r, 'stateAt', at_s)
  if state ~= 'running' then drop(r, 'workerId') end
  return true
end

local function put_json(r, field, json)
  if json == '' then drop(r, field) else put(r, field, json) end
end

local i = 5
while i <= #ARGV do
  local kind, id, at_s = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local at = tonumber(at_s)
  local r = records[id]
  if not r then
    r = load(id)
    records[id] = r
    order[#order + 1] = id
  end
  -- The first enqueue (of a new or partial record) sets enqueuedAt, if it is older.
  local first = not r.exists or r.actor == ''
  touch(r, at, at_s)
  if kind == 'e' then
    r.actor, r.queue = ARGV[i + 3], ARGV[i + 4]
    put(r, 'actor', r.actor)
    put(r, 'queue', r.queue)
    put_json(r, 'args', ARGV[i + 6])
    put_json(r, 'kwargs', ARGV[i + 7])
    put(r, 'argsTruncated', ARGV[i + 8])
    if first and at < r.enq then r.enq, r.enq_s = at, at_s end
    if set_state(r, at, at_s, ARGV[i + 5]) then
      put(r, 'options', ARGV[i + 9])
      put(r, 'body', ARGV[i + 11])
      put_json(r, 'eta', ARGV[i + 10])
    end
    i = i + 12
  elseif kind == 'a' then
    put(r, 'a:' .. ARGV[i + 3], ARGV[i + 4])
    local state = ARGV[i + 6]
    if state ~= '' and set_state(r, at, at_s, state) and state == 'running' then
      put(r, 'workerId', ARGV[i + 5])
    end
    i = i + 7
  elseif kind == 's' then
    set_state(r, at, at_s, ARGV[i + 3])
    i = i + 4
  elseif kind == 'p' then
    put_json(r, 'progress', ARGV[i + 3])
    i = i + 4
  else
    return redis.error_reply('tracking-write: unknown update kind ' .. tostring(kind))
  end
end

-- The keys whose expiry must reach past a record's, with the latest such record expiry.
local key_expiry = {}
local function hold(key, expires)
  if not key_expiry[key] or key_expiry[key] < expires then key_expiry[key] = expires end
end

-- Lua's unpack takes some thousands of values at most: call in chunks.
local function call_chunked(command, key, values)
  for first = 1, #values, 1000 do
    redis.call(command, key, unpack(values, first, math.min(first + 999, #values)))
  end
end

local written = 0
for _, id in ipairs(order) do
  local r = records[id]
  local expires = r.upd + retention
  if expires < now then
    -- Past its retention already (an old update of a message tracking no longer has).
    forget(P, id)
  else
    written = written + 1
    local expires_s = string.format('%.0f', math.ceil(expires))
    put(r, 'updatedAt', r.upd_s)
    put(r, 'enqueuedAt', r.enq_s)
    local pairs_ = {}
    for field, value in pairs(r.set) do
      pairs_[#pairs_ + 1] = field
      pairs_[#pairs_ + 1] = value
    end
    -- Keep field and value together across chunks.
    for first = 1, #pairs_, 1000 do
      redis.call('HSET', r.key, unpack(pairs_, first, math.min(first + 999, #pairs_)))
    end
    local dels = {}
    for field in pairs(r.del) do dels[#dels + 1] = field end
    if #dels > 0 then call_chunked('HDEL', r.key, dels) end
    redis.call('PEXPIREAT', r.key, expires_s)

    -- Move the index entries if the queue, actor or state changed; rescore them if enqueuedAt did.
    local where = {r.queue, r.actor, r.state}
    local new_keys = index_keys(P, where)
    local old_keys = r.where and index_keys(P, r.where)
    local rescore = r.enq_s ~= r.old_enq_s
    local moved = old_keys == nil
    for k = 1, 3 do
      local changed = old_keys == nil or old_keys[k] ~= new_keys[k]
      if changed and old_keys then redis.call('ZREM', old_keys[k], id) end
      if changed or rescore then redis.call('ZADD', new_keys[k], r.enq_s, id) end
      moved = moved or changed
      hold(new_keys[k], expires)
    end
    if rescore or old_keys == nil then redis.call('ZADD', P .. ':all', r.enq_s, id) end
    if moved then redis.call('HSET', P .. ':where', id, cjson.encode(where)) end
    redis.call('ZADD', P .. ':expiry', expires_s, id)
    hold(P .. ':all', expires)
    hold(P .. ':where', expires)
    hold(P .. ':expiry', expires)
  end
end

-- Sweep: forget records whose expiry has passed (Redis dropped their hash; the index entries
-- and bookkeeping go here), at most sweep_limit per call.
local swept = 0
if sweep_limit > 0 then
  local due = redis.call('ZRANGEBYSCORE', P .. ':expiry', '-inf', '(' .. ARGV[2], 'LIMIT', 0, sweep_limit)
  for _, id in ipairs(due) do forget(P, id) end
  swept = #due
end

-- Let the structure keys expire after their newest record, in case no write ever comes again.
local t = redis.call('TIME')
local server_now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for key, expires in pairs(key_expiry) do
  local target = math.ceil(expires) + KEY_GRACE
  local pttl = redis.call('PTTL', key)
  if pttl == -1 or (pttl >= 0 and server_now + pttl < target) then
    redis.call('PEXPIREAT', key, string.format('%.0f', target))
  end
end

return {written, swept}
