package paxos

import (
	"fmt"
	"slices"

	"github.com/quorumkv/quorumkv/quorum"
)

// Phase 2 without a new phase 1, slot after slot.
//
// Basic Paxos spends a Prepare on every decision. Multi-Paxos spends one
// per leader: the Prepare covers every slot from the first one not known
// chosen to infinity, so a granted promise is a promise for slots nobody
// has proposed yet. The article names this with a pair <proposal_id, index>
// ordered by proposal_id and then index: having won phase 1 at
// <b, i>, the leader holds, in the same phase-1 quorum, promises that rule
// out every lower ballot for slot i+1, i+2, ... as well; the Prepare for
// <b, i+1> would ask the same acceptors the same question and get the same
// answer. The answer stays good while b does: once an acceptor promises a
// higher ballot it refuses our Accepts, we learn of it from the refusal
// and stop. Each new slot then costs one round trip (phase 2), and with
// pipelining several slots share that round trip.
type leader struct {
	next uint64 // the next slot to fill
	sent uint64 // every slot up to sent has had its Accept sent once
	// acks[s] holds the acceptors that accepted slot s at our ballot, for
	// open slots (above commit).
	acks map[uint64]map[uint64]bool
	// active holds the acceptors heard from since the last quorum check.
	active       map[uint64]bool
	checkElapsed int
	// now counts the leader's ticks; sentAt[s] is when slot s's Accept
	// last went out, so that an answer still on its way is not mistaken
	// for a loss.
	now    int
	sentAt map[uint64]int

	pending        []Entry // proposals waiting for the window to open
	pendingBytes   uint64
	openBytes      uint64 // proposals in open slots
	configInFlight bool

	// joined holds the acceptors whose last answer said they know the
	// configuration (not Message.Joining): the ones that need no snapshot
	// to join. A configuration that adds an acceptor back forgets it
	// (forgetReadded).
	joined map[uint64]bool
	// joining holds the acceptors whose last answer said they join: the
	// leader is not idle while one waits for its snapshot.
	joining map[uint64]bool
	// commits holds the commit index each acceptor reported in its last
	// answer at our ballot (AllCaughtUp).
	commits map[uint64]uint64
	// needSnapshot: a joiner asked for a snapshot and the leader has none
	// to send (NeedsSnapshot).
	needSnapshot bool

	reads reads
	// lease is the read lease of this ballot (lease.go).
	lease lease
}

// becomeLeader ends phase 1. For every slot from the first one not known
// chosen up to the last one any promise mentioned, it proposes the
// highest-ballot value the promises reported, or a no-op for a slot
// nobody reported: a hole, which no value can have been chosen in (a
// chosen value would have been reported), and which must be filled before
// the slots after it can be delivered.
func (r *RawNode) becomeLeader() {
	if r.role != Candidate {
		panic(fmt.Sprintf("paxos: node %d: invalid transition [%v -> leader]", r.id, r.role))
	}
	best := r.cand.best
	r.role, r.leader, r.cand = Leader, r.id, nil
	r.lead = &leader{
		next: r.log.commit + 1, sent: r.log.commit,
		acks: map[uint64]map[uint64]bool{}, active: map[uint64]bool{},
		sentAt: map[uint64]int{}, joined: map[uint64]bool{}, joining: map[uint64]bool{},
		commits: map[uint64]uint64{}, lease: lease{acked: map[uint64]uint64{}},
	}
	if r.cfg.canary.leaseFromAck {
		r.lead.lease.ackedAt = map[uint64]int{}
	}
	last := r.log.commit
	for _, s := range sortedSlots(best) {
		last = max(last, s)
	}
	for s := r.log.commit + 1; s <= last; s++ {
		e, ok := best[s]
		if !ok {
			e = Entry{Type: EntryNoop}
		}
		r.fill(e.Type, e.Data)
	}
	r.openSlots()
	r.broadcastHeartbeat(nil)
}

// fill puts a value in the next slot at our ballot; our own acceptor
// accepts it at once (it is persisted before any Accept goes out).
func (r *RawNode) fill(typ EntryType, data []byte) {
	e := Entry{Slot: r.lead.next, Ballot: r.ballot, Type: typ, Data: data}
	r.lead.next++
	r.log.set(e)
	r.unstable = append(r.unstable, e)
	r.lead.acks[e.Slot] = map[uint64]bool{r.id: true}
	r.lead.openBytes += e.size()
	if typ == EntryConfig {
		r.lead.configInFlight = true
		r.forgetReadded(data)
	}
}

// forgetReadded forgets, as the leader fills the slot of the configuration
// in data, what the acceptors it adds (the newest chosen one lacks them)
// answered before: an answer from before an acceptor was added says
// nothing about the acceptor the configuration counts on. One removed and added back under this ballot
// may have lost everything in between (a kv node deletes the replica the
// range let go, and a later move adds an empty one on the same node):
//
//  1. acceptor 2 answers this leader as one that knows the configuration
//     (joined);
//  2. a configuration without 2 is chosen; 2's node deletes its replica;
//  3. a configuration with 2 again is chosen, and 2's node starts an
//     empty joiner, which waits for a snapshot;
//  4. the leader's heartbeat to 2 is lost, so 2 never answers as a
//     joiner, and the leader, idle, quiesces its range (kv);
//  5. Joined(2) still says true, from (1): kv's range driver sees no
//     joiner to wake the range for, and 2 waits for its snapshot for good.
//
// Forgotten, 2 counts as a joiner until it answers as one that knows the
// configuration, which it does once its snapshot is installed.
func (r *RawNode) forgetReadded(data []byte) {
	m, err := UnmarshalMembership(data)
	if err != nil {
		return // configSet.add refuses it if it is chosen
	}
	last := r.configs.last().Membership
	for _, v := range m.Voters {
		if !last.hasVoter(v.ID) {
			delete(r.lead.joined, v.ID)
			delete(r.lead.joining, v.ID)
		}
	}
}

func (r *RawNode) propose(typ EntryType, data []byte) error {
	if r.role != Leader {
		return ErrNotLeader
	}
	e := Entry{Type: typ, Data: data}
	if r.lead.pendingBytes+r.lead.openBytes+e.size() > r.cfg.MaxUncommittedBytes {
		return ErrProposalDropped
	}
	r.lead.pending = append(r.lead.pending, e)
	r.lead.pendingBytes += e.size()
	r.openSlots()
	return nil
}

// windowEnd is the last slot the leader may send: MaxOpenSlots past the
// chosen prefix. It is also what makes a slot's configuration known
// before the slot is sent (reconfig.go).
func (r *RawNode) windowEnd() uint64 { return r.log.commit + uint64(r.cfg.MaxOpenSlots) }

func (r *RawNode) sendLimit() uint64 { return min(r.lead.next-1, r.windowEnd()) }

// openSlots moves waiting proposals into slots while the window allows,
// then fills the slots up to the one a chosen configuration governs first
// with no-ops, so that it takes effect without waiting for proposals
// (reconfig.go).
func (r *RawNode) openSlots() {
	l := r.lead
	for len(l.pending) > 0 && l.next <= r.windowEnd() {
		e := l.pending[0]
		l.pending = l.pending[1:]
		l.pendingBytes -= e.size()
		r.fill(e.Type, e.Data)
	}
	for len(l.pending) == 0 && l.next < r.configs.last().Effective && l.next <= r.windowEnd() {
		r.fill(EntryNoop, nil)
	}
}

// flushAccepts sends the Accepts of the slots filled since the last call,
// batched per acceptor up to MaxSizePerMsg, each to the voters of the
// configuration that governs its slot.
func (r *RawNode) flushAccepts() {
	batches := map[uint64][]Entry{}
	for r.lead.sent < r.sendLimit() {
		s := r.lead.sent + 1
		r.lead.sent = s
		r.lead.sentAt[s] = r.lead.now
		e, _ := r.log.get(s)
		e.Ballot = Ballot{}
		for _, id := range r.configs.at(s).sys.Voters() {
			if id != r.id {
				batches[id] = append(batches[id], e)
			}
		}
		r.tryChoose(s) // our own acceptance may be a quorum already
	}
	for _, id := range slices.Sorted(mapKeys(batches)) {
		for _, chunk := range chunks(batches[id], r.cfg.MaxSizePerMsg) {
			r.send(Message{Type: MsgAccept, To: id, Ballot: r.ballot, Entries: chunk, Commit: r.log.commit})
		}
	}
}

// chunks splits es into runs of at most maxBytes (one entry at least).
func chunks(es []Entry, maxBytes uint64) [][]Entry {
	var out [][]Entry
	for len(es) > 0 {
		n, size := 1, es[0].size()
		for n < len(es) && size+es[n].size() <= maxBytes {
			size += es[n].size()
			n++
		}
		out = append(out, es[:n:n])
		es = es[n:]
	}
	return out
}

func mapKeys[V any](m map[uint64]V) func(func(uint64) bool) {
	return func(yield func(uint64) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// handleAck takes an Accepted or a heartbeat response at our ballot.
func (r *RawNode) handleAck(m Message) {
	l := r.lead
	l.active[m.From] = true
	l.commits[m.From] = m.Commit // the last answer's: a restart may lower it
	if m.Joining {
		delete(l.joined, m.From)
		l.joining[m.From] = true
	} else {
		l.joined[m.From] = true
		delete(l.joining, m.From)
	}
	for _, s := range m.Slots {
		if acks := l.acks[s]; acks != nil && s <= l.sent {
			acks[m.From] = true
			r.tryChoose(s)
		}
	}
	if m.Type == MsgHeartbeatResp {
		if m.Seq > 0 {
			l.lease.ack(m.From, m.Seq, l.now)
		}
		r.confirmRead(m.From, m.Context)
		if m.Joining {
			r.sendJoinerSnapshot(m.From)
		} else {
			r.catchUp(m.From, m.Commit, m.Commit < m.Slot)
		}
	}
	r.openSlots()
}

// tryChoose marks slot s chosen once a phase-2 quorum of its
// configuration accepted it at our ballot.
func (r *RawNode) tryChoose(s uint64) {
	acks := r.lead.acks[s]
	if acks == nil || !r.configs.at(s).sys.IsQuorum(quorum.Phase2, func(id uint64) bool { return acks[id] }) {
		return
	}
	delete(r.lead.acks, s)
	if from, to := r.log.markChosen(s); to >= from {
		r.onCommit(from, to)
	}
}

// chosen is called for each slot as it joins the chosen prefix.
func (l *leader) chosen(s uint64, e Entry) {
	delete(l.acks, s)
	delete(l.sentAt, s)
	l.openBytes -= min(l.openBytes, e.size())
	if e.Type == EntryConfig {
		l.configInFlight = false
	}
}

func (r *RawNode) tickLeader() {
	l := r.lead
	l.now++
	r.heartbeatElapsed++
	if r.heartbeatElapsed >= r.cfg.HeartbeatTicks {
		r.broadcastHeartbeat(l.reads.lastContext())
	}
	l.checkElapsed++
	if l.checkElapsed >= r.cfg.ElectionTicks {
		l.checkElapsed = 0
		active := l.active
		l.active = map[uint64]bool{}
		if !r.governing().IsQuorum(quorum.Phase2, func(id uint64) bool { return id == r.id || active[id] }) {
			// Cut off from a phase-2 quorum for a whole election timeout:
			// stop deferring others' Prepares so a reachable node can lead.
			r.becomeFollower(0)
		}
	}
}

// governing is the joint system of every configuration that governs a
// slot from commit+1 on: its phase-2 quorums meet every future leader's
// phase-1 quorum.
func (r *RawNode) governing() quorum.System {
	return joint(systemsOf(r.configs.from(r.log.commit + 1)))
}

// broadcastHeartbeat starts a heartbeat round, which carries ctx (the
// last pending read's) and, with leases on, the round's number: its
// acknowledgements confirm the reads pending and renew the lease.
func (r *RawNode) broadcastHeartbeat(ctx []byte) {
	r.heartbeatElapsed = 0
	var seq uint64
	if r.cfg.ReadLease {
		seq = r.lead.lease.newRound(r.lead.now, r.cfg.ElectionTicks)
	}
	for _, id := range voters(r.configs.from(r.log.commit + 1)) {
		if id != r.id {
			r.send(Message{Type: MsgHeartbeat, To: id, Ballot: r.ballot, Commit: r.log.commit, Context: ctx, Seq: seq})
		}
	}
}

// sendJoinerSnapshot sends a joining acceptor the snapshot it needs before
// it can learn anything chosen: the leader's, if it has compacted its log
// at least once and the slots applied since weigh at most
// joinerReplayBytes. A log never compacted starts from the founding
// configuration with no application data, which the application may not
// be able to ship (kv ships a handle to its data); a snapshot older than
// that leaves the joiner to accept and apply every slot since (kv
// compacts at 16 MiB of them: a new replica of a range that took large
// values held them twice over in memory, its slot log's and its
// memtable's, and its RSS grew by 75 MiB while a 256 MiB range moved to
// it). The leader then asks for a compaction at its applied slot
// (NeedsSnapshot) and sends the snapshot on a later heartbeat response,
// one per heartbeat like every catch-up.
func (r *RawNode) sendJoinerSnapshot(to uint64) {
	if (r.log.snap.Slot == 0 && r.log.snap.Data == nil) || r.log.appliedBytesSince(r.log.snap.Slot) > joinerReplayBytes {
		r.lead.needSnapshot = true
		return
	}
	snap := r.log.snap
	r.send(Message{Type: MsgSnapshot, To: to, Ballot: r.ballot, Snapshot: &snap, Commit: r.log.commit})
}

// joinerReplayBytes bounds the entries a joining acceptor gets after the
// leader's snapshot: past it, the leader takes a new snapshot first
// (sendJoinerSnapshot). Lower costs a compaction per joiner; higher
// replays more entries through the joiner's memory.
const joinerReplayBytes = 1 << 20

// catchUp sends an acceptor what it lacks, driven by heartbeat responses
// (one batch per heartbeat, so a lagging node never floods the leader):
// if it is lagging (it could not learn the commit index it was told), the
// chosen slots after its commit index; and the open slots it has not
// acknowledged (their Accept may have been lost). Slots already compacted
// go as the snapshot.
func (r *RawNode) catchUp(to, theirCommit uint64, lagging bool) {
	if lagging && theirCommit < r.log.snap.Slot {
		snap := r.log.snap
		r.send(Message{Type: MsgSnapshot, To: to, Ballot: r.ballot, Snapshot: &snap, Commit: r.log.commit})
		return
	}
	var es []Entry
	var size uint64
	// An acceptor may know more slots chosen than we do (we took over
	// with a shorter prefix): it still has to accept our open slots.
	for s := min(theirCommit, r.log.commit) + 1; s <= r.lead.sent; s++ {
		acks := r.lead.acks[s]
		if acks == nil && !lagging {
			continue // chosen, and it will learn so from the commit index
		}
		if acks != nil && (acks[to] || r.lead.now-r.lead.sentAt[s] < r.cfg.HeartbeatTicks) {
			continue // acknowledged, or sent too recently to call lost
		}
		e, ok := r.log.get(s)
		if !ok {
			continue // chosen by a snapshot we installed: nothing to resend
		}
		if size += e.size(); len(es) > 0 && size > r.cfg.MaxSizePerMsg {
			break
		}
		e.Ballot = Ballot{}
		es = append(es, e)
	}
	if len(es) > 0 {
		r.send(Message{Type: MsgAccept, To: to, Ballot: r.ballot, Entries: es, Commit: r.log.commit})
	}
}
