package redisbroker

import "github.com/redis/go-redis/v9"

// The Lua scripts: each operation is one script, so one round trip, and
// atomic. Every key of a hub shares the hub's hash tag (keys.go), so the
// scripts also run on Redis Cluster, where a script's keys must live in one
// slot. KEYS[1] is always the hub's node set, which routes the script to
// that slot; ARGV[1] is the hub's key prefix, from which a script derives
// the other keys.
//
// Keys (p = "<prefix>:{<hub>}:"):
//
//	p.."nodes"      ZSET  node id -> end of its lease (unix ms)
//	p.."renewed"    HASH  node id -> when it last renewed its lease, or left (unix ms)
//	p.."u:"..uid    HASH  node id -> connections of uid on that node
//	p.."n:"..node   SET   uids the node holds (to clean up after it)
//	p.."online"     ZSET  online uids (score 0), for paging
//	p.."ug:"..uid   SET   the uid's groups
//	p.."g:"..group  ZSET  the group's member uids (score 0), for paging
//	p.."groups"     SET   groups with members
//	p.."s:"..uid    HASH  the uid's numbering: seq, epoch
//	p.."h:"..uid    ZSET  the uid's history: seq -> "<seq>:<unix ms>:<message>"
//	p.."kept"       ZSET  offline uids whose history is kept -> its end (unix ms)
//
// Channels: p.."c:"..node (a node's inbox) and p.."c:all" (every node).

// clock starts every script: p, the prefix, and now, Redis's time in ms.
const clock = `
local p = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// common defines the helpers most scripts start with.
const common = clock + `
local function alive(node)
	local e = redis.call('ZSCORE', p .. 'nodes', node)
	return e and tonumber(e) > now
end
-- offline ends a uid's presence everywhere: its groups go, and its
-- numbering and history expire after ttl (0: no history kept). Its
-- mailbox is what comes after now or, with cut (unix ms), after what was
-- stored by then: a dead node delivered nothing after cut.
local function offline(uid, ttl, cut)
	redis.call('ZREM', p .. 'online', uid)
	local ug = p .. 'ug:' .. uid
	for _, g in ipairs(redis.call('SMEMBERS', ug)) do
		redis.call('ZREM', p .. 'g:' .. g, uid)
		if redis.call('ZCARD', p .. 'g:' .. g) == 0 then redis.call('SREM', p .. 'groups', g) end
	end
	redis.call('DEL', ug)
	if ttl > 0 then
		local s = p .. 's:' .. uid
		local off = tonumber(redis.call('HGET', s, 'seq') or 0)
		local h, i, done = p .. 'h:' .. uid, 0, not cut
		while not done do -- newest first, a page at a time
			local page = redis.call('ZREVRANGE', h, i, i + 15)
			for _, m in ipairs(page) do
				local seq, at = string.match(m, '^(%d+):(%d+):')
				if tonumber(at) <= cut then done = true; break end
				off = tonumber(seq) - 1
			end
			done = done or #page < 16
			i = i + 16
		end
		redis.call('HSET', s, 'off', off)
		redis.call('PEXPIRE', s, ttl)
		redis.call('ZADD', p .. 'kept', now + ttl, uid)
	else
		redis.call('DEL', p .. 's:' .. uid, p .. 'h:' .. uid)
	end
end
-- tell publishes msg to the nodes of hs (from holders) but origin, and
-- adds them to out
local function tell(hs, origin, msg, out)
	for _, h in ipairs(hs) do
		if h[1] ~= origin then
			redis.call('PUBLISH', p .. 'c:' .. h[1], msg)
			out[#out + 1] = h[1]
		end
	end
	return out
end
-- live nodes holding uid, with their connection counts
local function holders(uid)
	local h = redis.call('HGETALL', p .. 'u:' .. uid)
	local out = {}
	for i = 1, #h, 2 do
		if alive(h[i]) then out[#out + 1] = {h[i], tonumber(h[i + 1])} end
	end
	return out
end
`

// numbering defines number(uid, hs): the next sequence number of uid's
// numbering, with the message stored in its history; hs are the live
// nodes holding uid (holders): without one, the message also goes in the
// uid's mailbox, even where a dead node not yet reaped still holds it
// (whose numbering expires once it is reaped, not before: a node whose
// lease lapsed may yet renew it).
// ARGV[2] is the history size, ARGV[3] its ttl in ms, ARGV[4] an epoch for
// a new numbering, ARGV[5] the message.
const numbering = `
local size, ttl, newEpoch, msg = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], ARGV[5]
local function number(uid, hs)
	local s = p .. 's:' .. uid
	local seq = redis.call('HINCRBY', s, 'seq', 1)
	if seq == 1 then redis.call('HSETNX', s, 'epoch', newEpoch) end
	local h = p .. 'h:' .. uid
	redis.call('ZADD', h, seq, seq .. ':' .. now .. ':' .. msg)
	redis.call('ZREMRANGEBYRANK', h, 0, -(size + 1))
	redis.call('PEXPIRE', h, ttl)
	if #hs == 0 then
		if redis.call('HEXISTS', s, 'off') == 0 then redis.call('HSET', s, 'off', seq - 1) end
		if redis.call('EXISTS', p .. 'u:' .. uid) == 0 then
			redis.call('PEXPIRE', s, ttl)
			redis.call('ZADD', p .. 'kept', now + ttl, uid)
		end
	end
	return seq
end
`

// claiming defines claim(i): with an idempotency key ARGV[i], it makes
// this push the first of the key for ARGV[i+1] ms and returns nil, or
// returns what the key holds: "p:<ms>" while the first push is under way,
// "r:<receipt>" once it settled. A push that failed ("f"), or whose node
// has not settled it within ARGV[i+2] ms of <ms>, is taken over. <ms> is
// when the push began plus ARGV[i+3], the time it may wait for
// acknowledgements: a push that waits longer is not taken for dead
// sooner (and nodes that count from the start alone read it alike). An
// empty or missing key claims nothing. The publish scripts claim before
// they publish, so that a push with a key is still one round trip.
const claiming = `
local function claim(i)
	if (ARGV[i] or '') == '' then return nil end
	local k = p .. 'idem:' .. ARGV[i]
	local mine = 'p:' .. (now + tonumber(ARGV[i + 3]))
	if redis.call('SET', k, mine, 'NX', 'PX', ARGV[i + 1]) then return nil end
	local v = redis.call('GET', k)
	if v == 'f' or (string.sub(v, 1, 2) == 'p:' and now - tonumber(string.sub(v, 3)) > tonumber(ARGV[i + 2])) then
		redis.call('SET', k, mine, 'KEEPTTL')
		return nil
	end
	return v
end
`

// routing defines route(uid, seq, hs) and publishAll(head, numbered): per-node
// lists of targets, published to each node's inbox as head .. ',"u":[...]}';
// publishAll returns how many uids were numbered, then the nodes.
// ARGV[6] is the origin node, routed to as well: every node delivers
// numbered pushes in Redis's order. An origin Redis does not know (Redis
// restarted or was flushed, and lost the index of who holds which uid)
// gets an error before anything is written: routed now, its own uids
// would be missed.
const routing = `
if not redis.call('ZSCORE', p .. 'nodes', ARGV[6]) then
	return redis.error_reply('` + unknownNode + ` Redis does not know this node')
end
local perNode, nodes = {}, {}
local function route(uid, seq, hs)
	for _, h in ipairs(hs) do
		local node = h[1]
		if not perNode[node] then perNode[node] = {}; nodes[#nodes + 1] = node end
		local l = perNode[node]
		l[#l + 1] = {uid, seq}
	end
end
local function publishAll(head, numbered)
	local out = {numbered}
	for _, node in ipairs(nodes) do
		redis.call('PUBLISH', p .. 'c:' .. node, head .. ',"u":' .. cjson.encode(perNode[node]) .. '}')
		out[#out + 1] = node
	end
	return out
end
`

var (
	// scriptPublishUIDs numbers (with history) and routes a push to uids:
	// ARGV[7] is the envelope's head, ARGV[8..11] an idempotency claim,
	// ARGV[12..] the uids. A push whose key is taken gets the key's value.
	scriptPublishUIDs = redis.NewScript(common + numbering + routing + claiming + `
local prior = claim(8)
if prior then return prior end
for i = 12, #ARGV do
	local hs = holders(ARGV[i])
	route(ARGV[i], number(ARGV[i], hs), hs)
end
return publishAll(ARGV[7], #ARGV - 11)
`)

	// scriptRouteUIDs publishes a push without history to uids: ARGV[3],
	// the whole envelope (every uid in it), goes once to each live node
	// holding one of the uids ARGV[8..], but ARGV[2], the origin, which
	// delivers to its own connections itself; each node delivers to those
	// of the uids it holds. ARGV[4..7] are an idempotency claim. It
	// returns 0 (none numbered), then the nodes, or the key's value when
	// another push has it. The hot path of the API, "send to a uid": one
	// function defined, no JSON written, a command per uid and per node.
	scriptRouteUIDs = redis.NewScript(clock + claiming + `
local nodes, origin = p .. 'nodes', ARGV[2]
if not redis.call('ZSCORE', nodes, origin) then
	return redis.error_reply('` + unknownNode + ` Redis does not know this node')
end
local prior = claim(4)
if prior then return prior end
local out, seen = {0}, {[origin] = true}
for i = 8, #ARGV do
	local h = redis.call('HGETALL', p .. 'u:' .. ARGV[i])
	for j = 1, #h, 2 do
		local node = h[j]
		if not seen[node] then
			seen[node] = true
			local e = redis.call('ZSCORE', nodes, node)
			if e and tonumber(e) > now then
				redis.call('PUBLISH', p .. 'c:' .. node, ARGV[3])
				out[#out + 1] = node
			end
		end
	end
end
return out
`)

	// scriptPublishGroup numbers (with history) and routes a push to a
	// group's members: ARGV[7] is the envelope's head, ARGV[8] the group,
	// ARGV[9..12] an idempotency claim.
	scriptPublishGroup = redis.NewScript(common + numbering + routing + claiming + `
local prior = claim(9)
if prior then return prior end
local numbered = 0
for _, uid in ipairs(redis.call('ZRANGE', p .. 'g:' .. ARGV[8], 0, -1)) do
	local hs = holders(uid)
	route(uid, number(uid, hs), hs)
	numbered = numbered + 1
end
return publishAll(ARGV[7], numbered)
`)

	// scriptPublishAll numbers a broadcast for every online uid and every
	// offline one whose history is kept, and routes it: ARGV[7] is the
	// envelope's head, ARGV[8..11] an idempotency claim.
	scriptPublishAll = redis.NewScript(common + numbering + routing + claiming + `
local prior = claim(8)
if prior then return prior end
redis.call('ZREMRANGEBYSCORE', p .. 'kept', '-inf', now)
local numbered = 0
for _, uid in ipairs(redis.call('ZRANGE', p .. 'online', 0, -1)) do
	local hs = holders(uid)
	route(uid, number(uid, hs), hs)
	numbered = numbered + 1
end
for _, uid in ipairs(redis.call('ZRANGE', p .. 'kept', 0, -1)) do
	if redis.call('EXISTS', p .. 'u:' .. uid) == 0 then
		number(uid, {})
		numbered = numbered + 1
	end
end
return publishAll(ARGV[7], numbered)
`)

	// scriptFanOut publishes an unnumbered push to every node (a broadcast
	// or a group push without history): ARGV[2] is the envelope, ARGV[4..7]
	// an idempotency claim. It returns the live nodes but ARGV[3], the
	// origin.
	scriptFanOut = redis.NewScript(clock + claiming + `
local prior = claim(4)
if prior then return prior end
redis.call('PUBLISH', p .. 'c:all', ARGV[2])
local out = {}
for _, node in ipairs(redis.call('ZRANGEBYSCORE', p .. 'nodes', '(' .. now, '+inf')) do
	if node ~= ARGV[3] then out[#out + 1] = node end
end
return out
`)

	// scriptToHolders publishes ARGV[3] to the live nodes holding uid
	// ARGV[2], but ARGV[4], the origin; it returns those nodes.
	scriptToHolders = redis.NewScript(common + `
return tell(holders(ARGV[2]), ARGV[4], ARGV[3], {})
`)

	// scriptAttach records uid's first connection on node ARGV[2]
	// (ARGV[3] connections) and returns its groups.
	scriptAttach = redis.NewScript(common + `
local uid, node = ARGV[4], ARGV[2]
local u = p .. 'u:' .. uid
redis.call('HSET', u, node, ARGV[3])
redis.call('SADD', p .. 'n:' .. node, uid)
redis.call('ZADD', p .. 'online', 0, uid)
redis.call('PERSIST', p .. 's:' .. uid)
redis.call('ZREM', p .. 'kept', uid)
return redis.call('SMEMBERS', p .. 'ug:' .. uid)
`)

	// scriptCounts records how many connections node ARGV[2] holds of each
	// uid: ARGV[3] is the history ttl (0: off), then uid, count pairs.
	scriptCounts = redis.NewScript(common + `
local node, ttl = ARGV[2], tonumber(ARGV[3])
for i = 4, #ARGV, 2 do
	local uid, n = ARGV[i], tonumber(ARGV[i + 1])
	local u = p .. 'u:' .. uid
	if n > 0 then
		redis.call('HSET', u, node, n)
		redis.call('SADD', p .. 'n:' .. node, uid)
		redis.call('ZADD', p .. 'online', 0, uid)
		redis.call('PERSIST', p .. 's:' .. uid)
		redis.call('ZREM', p .. 'kept', uid)
	elseif redis.call('HDEL', u, node) == 1 then
		redis.call('SREM', p .. 'n:' .. node, uid)
		if redis.call('HLEN', u) == 0 then offline(uid, ttl) end
	end
end
return 0
`)

	// scriptHeartbeat renews node ARGV[2]'s lease of ARGV[3] ms, noting
	// when (a reaper's mailboxes start there), and returns 0; a node Redis
	// does not know (a new node, or a store that lost its state) gets 1
	// and no lease, unless ARGV[4] is "1": it announces its uids first,
	// then enters with ARGV[4] "1", so that a known node is one whose uids
	// are routed to it.
	scriptHeartbeat = redis.NewScript(clock + `
local nodes, node = p .. 'nodes', ARGV[2]
if not redis.call('ZSCORE', nodes, node) and ARGV[4] ~= '1' then return 1 end
redis.call('ZADD', nodes, now + tonumber(ARGV[3]), node)
redis.call('HSET', p .. 'renewed', node, now)
return 0
`)

	// scriptDepart ends node ARGV[2]'s lease now, for a node that leaves:
	// its uids are reaped next, their mailboxes starting now.
	scriptDepart = redis.NewScript(clock + `
redis.call('ZADD', p .. 'nodes', 0, ARGV[2])
redis.call('HSET', p .. 'renewed', ARGV[2], now)
return 0
`)

	// scriptRegroup records again the groups of uids node ARGV[2] holds,
	// for a store that lost them: ARGV[3..] are a uid, how many groups
	// follow, then the groups, and so on. A uid the node does not hold (it
	// left meanwhile) is skipped. The caps were checked when the uids
	// joined.
	scriptRegroup = redis.NewScript(clock + `
local i = 3
while i <= #ARGV do
	local uid, k = ARGV[i], tonumber(ARGV[i + 1])
	if redis.call('HEXISTS', p .. 'u:' .. uid, ARGV[2]) == 1 then
		for j = i + 2, i + 1 + k do
			local g = ARGV[j]
			redis.call('SADD', p .. 'ug:' .. uid, g)
			redis.call('ZADD', p .. 'g:' .. g, 0, uid)
			redis.call('SADD', p .. 'groups', g)
		end
	end
	i = i + 2 + k
end
return 0
`)

	// scriptReap cleans up after nodes whose lease has ended: at most
	// ARGV[3] uids per call, the history ttl is ARGV[2]. It returns how many
	// uids it handled (0: nothing left). A node delivered nothing after it
	// last renewed its lease, or left: what was stored for its uids since
	// then goes in their mailboxes.
	scriptReap = redis.NewScript(common + `
local ttl, budget = tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', p .. 'kept', '-inf', now)
local done = 0
for _, node in ipairs(redis.call('ZRANGEBYSCORE', p .. 'nodes', '-inf', now)) do
	local cut = tonumber(redis.call('HGET', p .. 'renewed', node) or '')
	local n = p .. 'n:' .. node
	for _, uid in ipairs(redis.call('SPOP', n, budget - done)) do
		local u = p .. 'u:' .. uid
		if redis.call('HDEL', u, node) == 1 and redis.call('HLEN', u) == 0 then offline(uid, ttl, cut) end
		done = done + 1
	end
	if redis.call('SCARD', n) == 0 then
		redis.call('ZREM', p .. 'nodes', node)
		redis.call('HDEL', p .. 'renewed', node)
	end
	if done >= budget then break end
end
return done
`)

	// scriptOnline returns the connections of uid ARGV[2] on live nodes.
	scriptOnline = redis.NewScript(common + `
local n = 0
for _, h in ipairs(holders(ARGV[2])) do n = n + h[2] end
return n
`)

	// scriptUIDs pages online uids (or a group's members, ARGV[2] non-empty)
	// after ARGV[3], at most ARGV[4] of them plus one to tell whether more
	// remain, skipping uids held only by nodes whose lease has ended.
	scriptUIDs = redis.NewScript(common + `
local key = p .. 'online'
if ARGV[2] ~= '' then key = p .. 'g:' .. ARGV[2] end
local limit = tonumber(ARGV[4])
local from = '-'
if ARGV[3] ~= '' then from = '(' .. ARGV[3] end
local out = {}
while #out <= limit do
	local batch = redis.call('ZRANGEBYLEX', key, from, '+', 'LIMIT', 0, limit + 1)
	if #batch == 0 then break end
	for _, uid in ipairs(batch) do
		if #holders(uid) > 0 then
			out[#out + 1] = uid
			if #out > limit then break end
		end
		from = '(' .. uid
	end
end
return out
`)

	// scriptJoin adds uid ARGV[2] to group ARGV[3] when it is online
	// anywhere, and tells the nodes holding it but ARGV[5] (ARGV[4] is the
	// event). ARGV[6] and ARGV[7] cap the uid's groups and the hub's. It
	// returns -1 when the uid is offline, -2 over a cap, else the nodes
	// told.
	scriptJoin = redis.NewScript(common + `
local uid, g = ARGV[2], ARGV[3]
local hs = holders(uid)
if #hs == 0 then return -1 end
if redis.call('SISMEMBER', p .. 'ug:' .. uid, g) == 0 then
	if redis.call('SCARD', p .. 'ug:' .. uid) >= tonumber(ARGV[6]) then return -2 end
	if redis.call('SISMEMBER', p .. 'groups', g) == 0 and redis.call('SCARD', p .. 'groups') >= tonumber(ARGV[7]) then return -2 end
end
redis.call('SADD', p .. 'ug:' .. uid, g)
redis.call('ZADD', p .. 'g:' .. g, 0, uid)
redis.call('SADD', p .. 'groups', g)
return tell(hs, ARGV[5], ARGV[4], {})
`)

	// scriptLeave removes uid ARGV[2] from group ARGV[3] and tells the nodes
	// holding it but ARGV[5] (ARGV[4] is the event). It returns whether the
	// uid was a member (1 or 0) first, then the nodes told.
	scriptLeave = redis.NewScript(common + `
local uid, g = ARGV[2], ARGV[3]
local was = redis.call('ZREM', p .. 'g:' .. g, uid)
redis.call('SREM', p .. 'ug:' .. uid, g)
if redis.call('ZCARD', p .. 'g:' .. g) == 0 then redis.call('SREM', p .. 'groups', g) end
return tell(holders(uid), ARGV[5], ARGV[4], {was})
`)

	// scriptRecover returns uid ARGV[2]'s numbering {seq, epoch, now,
	// from} and the stored messages after from: ARGV[3], or 0 when ARGV[4]
	// (the client's epoch) is another numbering's; with ARGV[3] empty, the
	// uid's mailbox (what came after it last went offline, taken once), or
	// nothing (from -1). A uid without a numbering gets one (epoch ARGV[5]),
	// kept for ARGV[6] ms unless the uid is online.
	scriptRecover = redis.NewScript(common + `
local uid = ARGV[2]
local s = p .. 's:' .. uid
local seq = redis.call('HGET', s, 'seq')
local epoch = redis.call('HGET', s, 'epoch')
if not epoch then
	seq = 0
	epoch = ARGV[5]
	redis.call('HSET', s, 'seq', 0, 'epoch', epoch)
	if redis.call('EXISTS', p .. 'u:' .. uid) == 0 then redis.call('PEXPIRE', s, tonumber(ARGV[6])) end
end
local from = -1
if ARGV[3] == '' then
	local off = redis.call('HGET', s, 'off')
	if off then
		redis.call('HDEL', s, 'off')
		from = tonumber(off)
	end
elseif ARGV[4] ~= '' and ARGV[4] ~= epoch then
	from = 0
else
	from = tonumber(ARGV[3])
end
local out = {tonumber(seq), epoch, now, from}
if from >= 0 then
	for _, m in ipairs(redis.call('ZRANGEBYSCORE', p .. 'h:' .. uid, '(' .. from, '+inf')) do
		out[#out + 1] = m
	end
end
return out
`)

	// scriptDiverged starts a new epoch for uids this node numbered on its
	// own while the store was unreachable: ARGV[2] is the new epoch, then
	// uid, highest local seq pairs. The numbering goes on above what the
	// node used, so live clients never see a number twice.
	scriptDiverged = redis.NewScript(common + `
for i = 3, #ARGV, 2 do
	local s = p .. 's:' .. ARGV[i]
	local seq = tonumber(redis.call('HGET', s, 'seq') or '0')
	redis.call('HSET', s, 'seq', math.max(seq, tonumber(ARGV[i + 1])), 'epoch', ARGV[2])
end
return 0
`)
)

// scriptClaim claims idempotency key ARGV[2] as claim does (ARGV[3] is
// its window, ARGV[4] how long a push may stay under way, ARGV[5] the
// caller's wait for acknowledgements), without a push: "first" when the
// caller has it.
var scriptClaim = redis.NewScript(clock + claiming + `
return claim(2) or 'first'
`)
