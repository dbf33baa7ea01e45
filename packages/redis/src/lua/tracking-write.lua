-- tracking-write: apply a batch of tracking updates (the semantics of @tq/core's `applyUpdate`),
-- then set expiries and sweep expired records. Each update is applied on its own, in order (a
-- message's updates may span two calls of one pipeline).
--
-- This runs on the hot path of every tracked message, and Redis runs nothing else meanwhile:
-- each update is applied on its own (read, HSET, index moves) reading only the fields it needs
-- (an attempt or state update reads four; the rest only when an index or an expiry moves), with
-- no table made per update (the HSET arguments go in one scratch array).
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

-- Locals, not globals: looked up once per call, not once per use.
local call, pcall_redis, num, unpack = redis.call, redis.pcall, tonumber, unpack
local P = ARGV[1]
local now = num(ARGV[2])
local retention = num(ARGV[3])
local sweep_limit = num(ARGV[4])
local slack = math.floor(math.min(retention / 100, 3600000))
-- Index keys outlive their newest record by this much (ms): they expire by themselves only when
-- the writes stop for good, since the sweep runs on writes.
local KEY_GRACE = 60000

-- The latest record expiry each structure key must outlast: by queue, actor and state name, and
-- over all records (P:all, P:where, P:expiry).
local hold_q, hold_a, hold_s, hold_all = {}, {}, {}, nil
local function hold(t, name, drops)
  local current = t[name]
  if not current or current < drops then t[name] = drops end
end

-- The update being applied: its record's key, what was stored, what it becomes. Upvalues, not a
-- table per update.
local key, stored, old_state, state, state_at, at, at_s
-- HSET field/value pairs (w[1..wn]) and HDEL fields (d[1..dn]) of the update, reused.
local w, wn, d, dn = {}, 0, {}, 0

local function put(field, value)
  w[wn + 1], w[wn + 2] = field, value
  wn = wn + 2
end

local function drop(field)
  -- A new hash has nothing to remove.
  if stored then
    dn = dn + 1
    d[dn] = field
  end
end

local function put_json(field, json)
  if json == '' then drop(field) else put(field, json) end
end

-- A state replaces the current one unless that one was set by a newer update; of two at the same
-- millisecond, the state further along stays (as apply.ts).
local function set_state(new)
  if at < state_at then return false end
  if at == state_at and (STATE_RANK[new] or 0) < (STATE_RANK[state] or 0) then return false end
  state, state_at = new, at
  put('state', new)
  put('stateAt', at_s)
  -- Only a running record has a worker id (the updates keep it so).
  if new ~= 'running' and old_state == 'running' then drop('workerId') end
  return true
end

-- Index additions wait and go in one ZADD per index key (and one HSET of P:where), a command per
-- key instead of one per record. A removal of a member still waiting to go in, and anything
-- that reads or clears the indexes (forget, the sweep), sends the waiting ones first.
local later, later_keys, later_members = {}, {}, {}
local where_later = {}

local function send_later()
  for k = 1, #later_keys do
    local name = later_keys[k]
    local pairs_ = later[name]
    for first_arg = 1, #pairs_, 1000 do
      call('ZADD', name, unpack(pairs_, first_arg, math.min(first_arg + 999, #pairs_)))
    end
  end
  if #where_later > 0 then
    for first_arg = 1, #where_later, 1000 do
      call('HSET', P .. ':where', unpack(where_later, first_arg, math.min(first_arg + 999, #where_later)))
    end
  end
  if #later_keys > 0 or #where_later > 0 then later, later_keys, later_members, where_later = {}, {}, {}, {} end
end

local function zadd(name, score, member)
  local pairs_ = later[name]
  if not pairs_ then
    pairs_ = {}
    later[name] = pairs_
    later_members[name] = {}
    later_keys[#later_keys + 1] = name
  end
  pairs_[#pairs_ + 1] = score
  pairs_[#pairs_ + 1] = member
  later_members[name][member] = true
end

local function zrem(name, member)
  local waiting = later_members[name]
  if waiting and waiting[member] then send_later() end
  call('ZREM', name, member)
end

local function forget_now(id)
  send_later()
  forget(P, id)
end

local U = cjson.decode(ARGV[5])
local body = 6
local written = 0
local i = 1
while i <= #U do
  local kind, id = U[i], U[i + 1]
  at_s = U[i + 2]
  at = num(at_s)
  key = P .. ':m:' .. id
  wn, dn = 0, 0
  local enqueue = kind == 'e'
  -- What the update needs of the stored record (an enqueue also its indexes). A key that is not a
  -- hash, or a hash with record fields but no state, is garbage: it is replaced.
  local f
  if enqueue then
    f = pcall_redis('HMGET', key, 'state', 'stateAt', 'updatedAt', 'expiresAt', 'enqueuedAt', 'actor', 'queue')
  else
    f = pcall_redis('HMGET', key, 'state', 'stateAt', 'updatedAt', 'expiresAt')
  end
  if f.err or (not f[1] and (f[2] or f[3] or f[4] or f[5] or f[6] or f[7])) then
    call('DEL', key)
    f = {}
  end
  stored = f[1] and true or false
  local upd_s, exp_s, enq_s, actor, queue
  if stored then
    old_state, state = f[1], f[1]
    state_at = num(f[2]) or -math.huge
    upd_s, exp_s = f[3], f[4]
    if enqueue then enq_s, actor, queue = num(f[5]) and f[5] or nil, f[6] or '', f[7] or '' end
  else
    -- An id without a record but with a P:where entry left entries behind (Redis dropped its hash
    -- before the sweep came): they go first, the record starts anew (a partial one, queue and
    -- actor unknown, if its enqueue has not come yet).
    if call('HEXISTS', P .. ':where', id) == 1 then forget_now(id) end
    old_state, state, state_at, actor, queue = nil, 'queued', -math.huge, '', ''
    if not enqueue then
      put('state', 'queued')
      put('actor', '')
      put('queue', '')
    end
  end
  local old_upd_s, old_enq_s, old_actor, old_queue = upd_s, enq_s, actor, queue
  -- The first enqueue (of a new or partial record) sets enqueuedAt, if it is older.
  local first = not stored or (enqueue and actor == '')
  if not stored or (enqueue and not enq_s) then enq_s = at_s end
  local upd = num(upd_s)
  if not upd or at > upd then upd, upd_s = at, at_s end

  if enqueue then
    actor, queue = U[i + 3], U[i + 4]
    if actor ~= old_actor or not stored then put('actor', actor) end
    if queue ~= old_queue or not stored then put('queue', queue) end
    put_json('args', U[i + 6])
    put_json('kwargs', U[i + 7])
    put('argsTruncated', U[i + 8])
    if first and at < num(enq_s) then enq_s = at_s end
    -- A record the worker started (its updates came first) still takes the message's options and body.
    if set_state(U[i + 5]) or first then
      put('options', U[i + 9])
      put('body', ARGV[body])
      put_json('eta', U[i + 10])
    end
    body = body + 1
    i = i + 11
  elseif kind == 'a' then
    put('a:' .. U[i + 3], U[i + 4])
    local new = U[i + 6]
    if new ~= '' and set_state(new) and new == 'running' then put('workerId', U[i + 5]) end
    i = i + 7
  elseif kind == 's' then
    set_state(U[i + 3])
    i = i + 4
  elseif kind == 'p' then
    put_json('progress', U[i + 3])
    i = i + 4
  else
    return redis.error_reply('tracking-write: unknown update kind ' .. tostring(kind))
  end

  local deadline = upd + retention
  if deadline < now then
    -- Past its retention already (an old update of a message tracking no longer has).
    forget_now(id)
  else
    written = written + 1
    -- The expiry stays unless the deadline passed it (or a shorter retention moved it nearer).
    local expires = num(exp_s)
    local expire = not expires or expires < deadline or expires > deadline + slack + 1
    if expire then
      expires = math.ceil(deadline + slack)
      put('expiresAt', string.format('%.0f', expires))
    end
    local drops = expires + slack
    if upd_s ~= old_upd_s then put('updatedAt', upd_s) end
    if enq_s ~= old_enq_s then put('enqueuedAt', enq_s) end
    local state_moved = state ~= old_state
    -- An attempt or state update on a stored record did not read its index fields: read the ones
    -- a moving index or expiry needs.
    if stored and not enqueue then
      if state_moved and not UNINDEXED[state] then
        local e = call('HGET', key, 'enqueuedAt')
        enq_s = num(e) and e or at_s
      end
      if expire then
        local names = call('HMGET', key, 'actor', 'queue')
        actor, queue = names[1] or '', names[2] or ''
        old_actor, old_queue = actor, queue
      end
      old_enq_s = enq_s
    end
    -- Keep field and value together across chunks (an update has a few dozen at most).
    for first_arg = 1, wn, 1000 do
      call('HSET', key, unpack(w, first_arg, math.min(first_arg + 999, wn)))
    end
    if dn > 0 then call('HDEL', key, unpack(d, 1, dn)) end
    if expire then
      call('PEXPIREAT', key, string.format('%.0f', drops))
      zadd(P .. ':expiry', string.format('%.0f', expires), id)
    end

    -- Move the index entries if the queue, actor or state changed; rescore them if enqueuedAt did.
    -- A new record goes in them all. P:where follows the queue and actor.
    local rescore = enq_s ~= old_enq_s
    local moved = not stored
    if enqueue or not stored then
      if queue ~= old_queue or not stored then
        if stored then zrem(P .. ':q:' .. old_queue, id) end
        zadd(P .. ':q:' .. queue, enq_s, id)
        moved = true
      elseif rescore then
        zadd(P .. ':q:' .. queue, enq_s, id)
      end
      if actor ~= old_actor or not stored then
        if stored then zrem(P .. ':a:' .. old_actor, id) end
        zadd(P .. ':a:' .. actor, enq_s, id)
        moved = true
      elseif rescore then
        zadd(P .. ':a:' .. actor, enq_s, id)
      end
    end
    -- The common states (queued, succeeded) have no index: listing them scans and filters.
    if state_moved then
      if stored and not UNINDEXED[old_state] then zrem(P .. ':s:' .. old_state, id) end
      if not UNINDEXED[state] then
        zadd(P .. ':s:' .. state, enq_s, id)
        hold(hold_s, state, drops)
      end
    elseif rescore and not UNINDEXED[state] then
      zadd(P .. ':s:' .. state, enq_s, id)
    end
    if rescore or not stored then zadd(P .. ':all', enq_s, id) end
    if moved then
      where_later[#where_later + 1] = id
      where_later[#where_later + 1] = cjson.encode({queue, actor})
    end
    -- The keys holding the record outlast it: all of them when its expiry moved, the ones it
    -- entered otherwise.
    if expire or moved or rescore then
      hold(hold_q, queue, drops)
      hold(hold_a, actor, drops)
      if not UNINDEXED[state] then hold(hold_s, state, drops) end
      if not hold_all or hold_all < drops then hold_all = drops end
    end
  end
end

-- Sweep: forget records whose expiry has passed (their hash and index entries, their
-- bookkeeping), at most sweep_limit per call.
send_later()
local swept = 0
if sweep_limit > 0 then
  local due = call('ZRANGEBYSCORE', P .. ':expiry', '-inf', '(' .. ARGV[2], 'LIMIT', 0, sweep_limit)
  for _, id in ipairs(due) do forget(P, id) end
  swept = #due
end

-- Let the structure keys expire after their newest record, in case no write ever comes again: a
-- grace later, or up to two (an expiry is set a grace ahead, so the writes of the next grace
-- leave it as it is).
if hold_all or next(hold_s) then
  local t = call('TIME')
  local server_now = num(t[1]) * 1000 + math.floor(num(t[2]) / 1000)
  local function extend(key_name, expires)
    local target = math.ceil(expires) + KEY_GRACE
    local pttl = call('PTTL', key_name)
    if pttl == -1 or (pttl >= 0 and server_now + pttl < target) then
      call('PEXPIREAT', key_name, string.format('%.0f', target + KEY_GRACE))
    end
  end
  for name, expires in pairs(hold_q) do extend(P .. ':q:' .. name, expires) end
  for name, expires in pairs(hold_a) do extend(P .. ':a:' .. name, expires) end
  for name, expires in pairs(hold_s) do extend(P .. ':s:' .. name, expires) end
  if hold_all then
    for _, name in ipairs({P .. ':all', P .. ':where', P .. ':expiry'}) do extend(name, hold_all) end
  end
end

return {written, swept}
