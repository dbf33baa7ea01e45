-- tracking-write: apply a batch of tracking updates (the semantics of @tq/core's `applyUpdate`),
-- then set expiries and sweep expired records. One call is atomic, so every message's updates
-- in it are applied together; the caller keeps all the updates of a message in one call.
--
-- No KEYS (the keys are built from the prefix: see tracking-common.lua).
-- ARGV[1]  prefix P
-- ARGV[2]  now, Unix ms (the writer's clock, as the update times)
-- ARGV[3]  retention, ms: a record expires this long after its last update (`updatedAt`)
-- ARGV[4]  most expired records to sweep
-- ARGV[5]  the updates' fields, as one JSON array of strings (one argument is far cheaper to send
--          and to take in than one per field). The updates, in order: a kind letter, the message
--          id, `at` (Unix ms), then
--   e (enqueued)  actor, queue, state, args JSON, kwargs JSON ('' = undefined), argsTruncated
--                 ('1' / '0'), options JSON, eta ('' = none); its body (bytes) is the next of
--                 ARGV[6…], one per enqueue, in order
--   a (attempt)   attempt number, attempt JSON, its worker id, state ('' = none)
--   s (state)     state
--   p (progress)  progress JSON ('' = undefined)
--
-- Fields of P:m:<id>: state, stateAt (the `at` of the update that set it; absent = never set),
-- enqueuedAt, updatedAt, actor, queue, args, kwargs (JSON; absent = undefined), argsTruncated
-- ('1' / '0'), options (JSON), eta, workerId, progress (JSON), body (bytes), a:<n> (the JSON
-- of attempt n), and expiresAt (the record's expiry, its P:expiry score). Numbers are kept as the
-- writer sent them: Lua would round them to 14 digits.
--
-- A record expires `retention` ms after its last update, or up to 1 % of the retention (at most
-- an hour; the slack) later: its expiry (expiresAt, its P:expiry score) is set a slack ahead, and
-- a write that does not move the record's deadline past it leaves the expiry as it is (no
-- PEXPIREAT, no P:expiry update: most updates of a record come soon after its enqueue). Redis
-- drops the hash another slack later, so that the sweep (on writes) finds it there, reads which
-- indexes hold it and removes it; P:where has what the sweep needs when it came too late.
--
-- Returns {records written, records swept}.

local P = ARGV[1]
local now = tonumber(ARGV[2])
local retention = tonumber(ARGV[3])
local sweep_limit = tonumber(ARGV[4])
local slack = math.floor(math.min(retention / 100, 3600000))
-- Index keys outlive their newest record by this much (ms): they expire by themselves only when
-- the writes stop for good, since the sweep runs on writes.
local KEY_GRACE = 60000

local records, order = {}, {}

-- What an update needs of a stored record. A key that is not a hash, or a hash with record fields
-- but no state, is garbage: it is replaced. The indexes a stored record is in follow from its fields. An id
-- without a record but with a P:where entry left entries behind (Redis dropped its hash before
-- the sweep came): they go first, the record starts anew.
local function load(id)
  local key = P .. ':m:' .. id
  local f = redis.pcall('HMGET', key, 'state', 'stateAt', 'enqueuedAt', 'updatedAt', 'actor', 'queue',
    'expiresAt', 'workerId')
  local r = {key = key, set = {}, del = {}}
  if f.err or (not f[1] and (f[2] or f[3] or f[4] or f[5] or f[6] or f[7] or f[8])) then
    redis.call('DEL', key)
    f = {}
  end
  if f[1] then
    r.exists, r.stored = true, true
    r.state, r.actor, r.queue = f[1], f[5] or '', f[6] or ''
    r.old_queue, r.old_actor, r.old_state = r.queue, r.actor, r.state
    r.state_at = tonumber(f[2]) or -math.huge
    if tonumber(f[3]) then r.enq, r.enq_s, r.old_enq_s = tonumber(f[3]), f[3], f[3] end
    if tonumber(f[4]) then r.upd, r.upd_s, r.old_upd_s = tonumber(f[4]), f[4], f[4] end
    r.expires = tonumber(f[7])
    r.has_worker = f[8] ~= false
  elseif redis.call('HEXISTS', P .. ':where', id) == 1 then
    forget(P, id)
  end
  return r
end

local function put(r, field, value)
  r.set[field] = value
  r.del[field] = nil
end

local function drop(r, field)
  r.set[field] = nil
  -- A new hash has nothing to remove, nor one without a worker a worker id.
  if r.stored and (field ~= 'workerId' or r.has_worker) then r.del[field] = true end
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
  -- Of two updates at the same millisecond, the state further along stays (as apply.ts).
  if at == r.state_at and (STATE_RANK[state] or 0) < (STATE_RANK[r.state] or 0) then return false end
  r.state, r.state_at = state, at
  put(r, 'state', state)
  put(r, 'stateAt', at_s)
  if state ~= 'running' then drop(r, 'workerId') end
  return true
end

local function put_json(r, field, json)
  if json == '' then drop(r, field) else put(r, field, json) end
end

local U = cjson.decode(ARGV[5])
local body = 6
local i = 1
while i <= #U do
  local kind, id, at_s = U[i], U[i + 1], U[i + 2]
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
    r.actor, r.queue = U[i + 3], U[i + 4]
    put(r, 'actor', r.actor)
    put(r, 'queue', r.queue)
    put_json(r, 'args', U[i + 6])
    put_json(r, 'kwargs', U[i + 7])
    put(r, 'argsTruncated', U[i + 8])
    if first and at < r.enq then r.enq, r.enq_s = at, at_s end
    -- A record the worker started (its updates came first) still takes the message's options and body.
    if set_state(r, at, at_s, U[i + 5]) or first then
      put(r, 'options', U[i + 9])
      put(r, 'body', ARGV[body])
      put_json(r, 'eta', U[i + 10])
    end
    body = body + 1
    i = i + 11
  elseif kind == 'a' then
    put(r, 'a:' .. U[i + 3], U[i + 4])
    local state = U[i + 6]
    if state ~= '' and set_state(r, at, at_s, state) and state == 'running' then
      put(r, 'workerId', U[i + 5])
    end
    i = i + 7
  elseif kind == 's' then
    set_state(r, at, at_s, U[i + 3])
    i = i + 4
  elseif kind == 'p' then
    put_json(r, 'progress', U[i + 3])
    i = i + 4
  else
    return redis.error_reply('tracking-write: unknown update kind ' .. tostring(kind))
  end
end

-- The latest record expiry each structure key must outlast: by queue, actor and state name, and
-- over all records (P:all, P:where, P:expiry).
local hold_q, hold_a, hold_s, hold_all = {}, {}, {}, nil
local function hold(t, name, expires)
  local current = t[name]
  if not current or current < expires then t[name] = expires end
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
  local deadline = r.upd + retention
  if deadline < now then
    -- Past its retention already (an old update of a message tracking no longer has).
    forget(P, id)
  else
    written = written + 1
    -- The expiry stays unless the deadline passed it (or a shorter retention moved it nearer).
    local expires = r.expires
    local expire = not expires or expires < deadline or expires > deadline + slack + 1
    if expire then
      expires = math.ceil(deadline + slack)
      put(r, 'expiresAt', string.format('%.0f', expires))
    end
    local drops = expires + slack
    if r.upd_s ~= r.old_upd_s then put(r, 'updatedAt', r.upd_s) end
    if r.enq_s ~= r.old_enq_s then put(r, 'enqueuedAt', r.enq_s) end
    local args = {}
    for field, value in pairs(r.set) do
      args[#args + 1] = field
      args[#args + 1] = value
    end
    -- Keep field and value together across chunks.
    for first = 1, #args, 1000 do
      redis.call('HSET', r.key, unpack(args, first, math.min(first + 999, #args)))
    end
    if next(r.del) then
      local dels = {}
      for field in pairs(r.del) do dels[#dels + 1] = field end
      call_chunked('HDEL', r.key, dels)
    end
    if expire then
      redis.call('PEXPIREAT', r.key, string.format('%.0f', drops))
      redis.call('ZADD', P .. ':expiry', r.set.expiresAt, id)
    end

    -- Move the index entries if the queue, actor or state changed; rescore them if enqueuedAt did.
    -- A new record (r.old_* unset) goes in them all. P:where follows the queue and actor.
    local rescore = r.enq_s ~= r.old_enq_s
    local moved = not r.stored
    if r.queue ~= r.old_queue then
      if r.stored then redis.call('ZREM', P .. ':q:' .. r.old_queue, id) end
      redis.call('ZADD', P .. ':q:' .. r.queue, r.enq_s, id)
      moved = true
    elseif rescore then
      redis.call('ZADD', P .. ':q:' .. r.queue, r.enq_s, id)
    end
    if r.actor ~= r.old_actor then
      if r.stored then redis.call('ZREM', P .. ':a:' .. r.old_actor, id) end
      redis.call('ZADD', P .. ':a:' .. r.actor, r.enq_s, id)
      moved = true
    elseif rescore then
      redis.call('ZADD', P .. ':a:' .. r.actor, r.enq_s, id)
    end
    -- The common states (queued, succeeded) have no index: listing them scans and filters.
    if r.state ~= r.old_state then
      if r.stored and not UNINDEXED[r.old_state] then redis.call('ZREM', P .. ':s:' .. r.old_state, id) end
      if not UNINDEXED[r.state] then redis.call('ZADD', P .. ':s:' .. r.state, r.enq_s, id) end
    elseif rescore and not UNINDEXED[r.state] then
      redis.call('ZADD', P .. ':s:' .. r.state, r.enq_s, id)
    end
    if rescore or not r.stored then redis.call('ZADD', P .. ':all', r.enq_s, id) end
    if moved then redis.call('HSET', P .. ':where', id, cjson.encode({r.queue, r.actor})) end
    hold(hold_q, r.queue, drops)
    hold(hold_a, r.actor, drops)
    if not UNINDEXED[r.state] then hold(hold_s, r.state, drops) end
    if not hold_all or hold_all < drops then hold_all = drops end
  end
end

-- Sweep: forget records whose expiry has passed (their hash and index entries, their
-- bookkeeping), at most sweep_limit per call.
local swept = 0
if sweep_limit > 0 then
  local due = redis.call('ZRANGEBYSCORE', P .. ':expiry', '-inf', '(' .. ARGV[2], 'LIMIT', 0, sweep_limit)
  for _, id in ipairs(due) do forget(P, id) end
  swept = #due
end

-- Let the structure keys expire after their newest record, in case no write ever comes again: a
-- grace later, or up to two (an expiry is set a grace ahead, so the writes of the next grace
-- leave it as it is).
if hold_all then
  local t = redis.call('TIME')
  local server_now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local function extend(key, expires)
    local target = math.ceil(expires) + KEY_GRACE
    local pttl = redis.call('PTTL', key)
    if pttl == -1 or (pttl >= 0 and server_now + pttl < target) then
      redis.call('PEXPIREAT', key, string.format('%.0f', target + KEY_GRACE))
    end
  end
  for name, expires in pairs(hold_q) do extend(P .. ':q:' .. name, expires) end
  for name, expires in pairs(hold_a) do extend(P .. ':a:' .. name, expires) end
  for name, expires in pairs(hold_s) do extend(P .. ':s:' .. name, expires) end
  for _, key in ipairs({P .. ':all', P .. ':where', P .. ':expiry'}) do extend(key, hold_all) end
end

return {written, swept}
