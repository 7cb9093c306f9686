package store

import (
	"slices"

	"github.com/quorumkv/quorumkv/kv/consensus"
	"github.com/quorumkv/quorumkv/paxos"
	"github.com/quorumkv/quorumkv/raft"
)

// Quiescence: an idle range costs nothing.
//
// A Raft leader heartbeats every range it leads on every tick, and every
// follower counts ticks toward an election; a node with thousands of idle
// ranges would spend its CPU and network on nothing. So a range whose
// leader finds it idle and fully replicated quiesces: the leader tells its
// followers (ControlQuiesce, with its term and commit index) and stops
// ticking the range; a follower that agrees (same leader and term) stops
// too. Any activity wakes the range: a proposal
// or read on the leader, any consensus message reaching a replica.
//
// A quiesced follower no longer counts toward an election, so it needs
// another way to notice that its leader died: every store sends a
// ControlBeacon to every peer node on every tick, one message per node
// pair however many ranges they share, and a store wakes the ranges
// quiesced under a leader whose node it has not heard from (beacon or any
// message) for an election timeout. They then campaign as usual.
//
// Safety does not depend on any of this: quiescence only stops ticks. A
// node partitioned from its leader but not from the beacons of the
// leader's node cannot be told apart from a healthy one; it stays
// quiesced until something reaches it, as the range stays idle.
//
// Both protocols quiesce when every replica holds the leader's whole log
// and knows it committed: Raft from the leader's progress of each follower
// (consensus.RaftCore.Quiescible), Multi-Paxos from the commit index each
// acceptor last reported, once its leader has nothing in flight
// (consensus.PaxosCore.Quiescible). A range one of whose replicas has not
// reported the whole log (cut off or down since before the last write)
// keeps ticking.

// quiesceAfterTicks is how long a leader waits after the last proposal or
// read before it considers quiescing a range: long enough that a steady
// trickle of requests does not make it quiesce and wake on every one.
const quiesceAfterTicks = 3

// quiesceState is the store's bookkeeping, owned by its goroutine.
type quiesceState struct {
	// ticks counts the store's ticks.
	ticks int64
	// heard is the tick at which each peer node was last heard from.
	heard map[uint64]int64
	// Followers are this node's quiesced follower replicas, by the node
	// that leads them.
	Followers map[uint64]map[uint64]*replica
	// count is the number of quiesced replicas, for metrics.
	count int
}

func (q *quiesceState) init() {
	q.heard = map[uint64]int64{}
	q.Followers = map[uint64]map[uint64]*replica{}
}

// quiesceTick is the store's tick for quiescence: it sends beacons, wakes
// followers whose leader fell silent, and lets idle leaders quiesce. It
// returns the replicas to tick (the awake ones).
func (s *Store) quiesceTick() {
	q := &s.Quiesce
	q.ticks++
	s.heard.ticks.Store(q.ticks)
	for _, id := range s.peerNodes() {
		s.sendControl(0, &consensus.ControlMessage{Kind: consensus.ControlBeacon, From: s.nodeID, To: id, Draining: s.Draining()})
	}
	timeout := int64(s.electionTicks())
	for leader, rs := range q.Followers {
		if q.ticks-q.heard[leader] <= timeout {
			continue
		}
		for _, r := range rs {
			s.wake(r)
		}
	}
}

// peerNodes are the other nodes of the catalog, in ID order.
func (s *Store) peerNodes() []uint64 {
	var out []uint64
	for id := range s.cat.Nodes {
		if id != s.nodeID {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

func (s *Store) electionTicks() int {
	if s.Config.Raft.ElectionTicks > 0 {
		return s.Config.Raft.ElectionTicks
	}
	return 10 // raft.DefaultElectionTicks
}

// sendControl sends a control message about range rangeID (0 for none).
func (s *Store) sendControl(rangeID uint64, m *consensus.ControlMessage) {
	if s.transport != nil {
		s.transport.Send(rangeID, consensus.PeerMessage{Control: m})
	}
}

// maybeQuiesce quiesces an awake leader replica that has been idle, and
// reports whether it did; the caller then tells its followers
// (sendQuiesce), in range order.
func (s *Store) maybeQuiesce(r *replica) bool {
	r.idleTicks++
	if r.Role != consensus.RoleLeader || r.idleTicks < quiesceAfterTicks || len(r.waiters) > 0 || len(r.Reads) > 0 || len(r.confirmed) > 0 || len(r.batched) > 0 {
		return false
	}
	if _, _, _, ok := r.Core.Quiescible(s.nodeID); !ok {
		return false
	}
	r.Quiesced = true
	s.Quiesce.count++
	// Its ticks stop now, and with them the clock of its lease: once
	// woken, it serves reads only after a new round.
	if !s.Config.Canary.LeaseKeptOnQuiesce {
		r.Core.ForgetLease()
	}
	return true
}

// sendQuiesce tells a just-quiesced leader's followers to quiesce too.
func (s *Store) sendQuiesce(r *replica) {
	followers, term, commit, _ := r.Core.Quiescible(s.nodeID)
	for _, f := range followers {
		s.sendControl(r.desc.ID, &consensus.ControlMessage{Kind: consensus.ControlQuiesce, From: s.nodeID, To: f, Term: term, Commit: commit})
	}
}

// wakes reports whether a consensus message wakes a quiesced replica.
// Heartbeats and their answers still in flight when a range quiesced do
// not: they carry no news, and waking on them would undo every quiesce.
func wakes(m consensus.PeerMessage) bool {
	switch {
	case m.Raft != nil:
		return m.Raft.Type != raft.MsgHeartbeat && m.Raft.Type != raft.MsgHeartbeatResp
	case m.Paxos != nil:
		return m.Paxos.Type != paxos.MsgHeartbeat && m.Paxos.Type != paxos.MsgHeartbeatResp
	}
	return true
}

// onControl handles a control message from another store.
func (s *Store) onControl(rangeID uint64, m *consensus.ControlMessage) {
	if m.Kind == consensus.ControlSubsumed {
		s.onSubsumed(rangeID, m)
		return
	}
	if m.Kind != consensus.ControlQuiesce {
		s.drainingPeers[m.From] = m.Draining // a beacon: the node is alive, and draining or not
		return
	}
	r, ok := s.Replicas[rangeID]
	if !ok || r.Quiesced || r.Leader != m.From || r.Role == consensus.RoleLeader {
		return
	}
	// The leader quiesces only when every replica holds its whole log, so
	// only the term needs checking. This replica may not have heard the
	// last commit index yet: it learns it from the message, and applies
	// the last entries, before it stops ticking. (It once stopped without:
	// a node then missed a keyspace created just before meta quiesced,
	// until meta's next change; TestSimWholeNodes, seed 594.)
	if st := r.Core.Status(); st.Term != m.Term || st.Commit > m.Commit {
		return // a newer leader, or stranger news: keep ticking
	}
	if err := r.Core.LearnCommit(s.nodeID, m.From, m.Term, m.Commit); err != nil {
		s.Logger.Warn("quiesce: commit index not taken", "range", rangeID, "err", err)
		return
	}
	r.Quiesced = true
	s.Quiesce.count++
	rs := s.Quiesce.Followers[m.From]
	if rs == nil {
		rs = map[uint64]*replica{}
		s.Quiesce.Followers[m.From] = rs
	}
	rs[rangeID] = r
}

// touch records a request on a leader replica: it wakes and starts
// counting idle ticks again.
func (s *Store) touch(r *replica) {
	r.idleTicks = 0
	s.wake(r)
}

// wake makes a quiesced replica tick again, for at least
// quiesceAfterTicks ticks: a leader woken by a restarted follower's
// election attempt must heartbeat it before quiescing again, or the
// follower never learns who leads.
func (s *Store) wake(r *replica) {
	if !r.Quiesced {
		return
	}
	r.idleTicks = 0
	r.Quiesced = false
	s.Quiesce.count--
	if rs := s.Quiesce.Followers[r.Leader]; rs != nil {
		delete(rs, r.desc.ID)
		if len(rs) == 0 {
			delete(s.Quiesce.Followers, r.Leader)
		}
	}
}
