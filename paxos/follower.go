package paxos

import "fmt"

// The acceptor and learner side of a Multi-Paxos node: what every node
// does with Prepares, Accepts, heartbeats and snapshots, whatever its role.

// handlePrepare grants phase 1 for every slot from m.Slot on, reporting
// what this acceptor accepted there. One promise covers all those slots,
// including slots nobody has proposed yet: that is what lets the leader
// skip phase 1 for them later.
func (r *RawNode) handlePrepare(m Message) {
	reply := Message{Type: MsgPromise, To: m.From, Ballot: m.Ballot}
	if r.deferToLeader(m) || m.Ballot.Less(r.promised) {
		reply.Reject, reply.Hint = true, r.promised
		r.send(reply)
		return
	}
	// A Prepare at the ballot already promised is a duplicate: answered
	// again, it changes nothing, and above all does not make this node
	// forget the leader it defers to (lease.go, rule 1).
	if r.promised.Less(m.Ballot) {
		if r.role != Follower && r.ballot.Less(m.Ballot) {
			r.becomeFollower(0)
		}
		r.promised = m.Ballot
		// Give the candidate a full timeout to finish before running our own.
		r.resetElectionTimeout()
		r.leader = 0
	}
	reply.Commit = r.log.commit
	reply.Entries = r.log.accepted(m.Slot)
	if r.log.snap.Slot >= m.Slot {
		snap := r.log.snap
		reply.Snapshot = &snap
	}
	r.send(reply)
}

// deferToLeader: while a live leader is heard (or this node is it), a
// Prepare from anyone else is refused without a promise (bound). A node
// that was cut off and comes back with a high ballot thus cannot depose a
// working leader; the refusal is safe (refusing is always safe in Paxos)
// and the leader's own check of its quorum ends the deferral when it
// stops working. With leases on the deferral is also the promise a lease
// counts on (lease.go).
//
// A transfer's candidate is not deferred: the leader asked for it, and
// granting a higher ballot is always safe. With leases on, only if the
// leader that asked is the one this acceptor defers to (its promised
// ballot): that leader ended its lease when it asked, another may not
// have (lease.go, rule 3).
func (r *RawNode) deferToLeader(m Message) bool {
	if m.Transfer && (!r.cfg.ReadLease || m.Hint == r.promised) {
		return false
	}
	return r.role == Leader || r.bound(m.From)
}

// admit decides whether to take an Accept, heartbeat or snapshot at
// m.Ballot: yes unless a higher ballot is promised. Taking it raises the
// promise to m.Ballot (an Accept implies the Prepare it skipped) and makes
// m.From the leader this node defers to.
func (r *RawNode) admit(m Message) bool {
	if m.Ballot.Less(r.promised) {
		return r.cfg.canary.acceptLowerBallot && m.Type == MsgAccept
	}
	r.promised = m.Ballot
	if r.role != Follower && r.ballot != m.Ballot {
		r.becomeFollower(m.From)
	}
	r.leader = m.From
	r.electionElapsed = 0
	return true
}

func (r *RawNode) reject(m Message, typ MessageType) {
	r.send(Message{Type: typ, To: m.From, Ballot: m.Ballot, Reject: true, Hint: r.promised})
}

// handleAccept accepts each entry at m.Ballot. Slots already known chosen
// are acknowledged without a write: the leader's value there can only be
// the chosen one.
func (r *RawNode) handleAccept(m Message) {
	if !r.admit(m) {
		r.reject(m, MsgAccepted)
		return
	}
	slots := make([]uint64, 0, len(m.Entries))
	for _, e := range m.Entries {
		if e.Slot > r.log.commit && e.Slot > r.log.snap.Slot {
			e.Ballot = m.Ballot
			r.log.set(e)
			r.unstable = append(r.unstable, e)
		}
		slots = append(slots, e.Slot)
	}
	r.learnCommit(m.Commit, m.Ballot)
	r.send(Message{Type: MsgAccepted, To: m.From, Ballot: m.Ballot, Slots: slots, Commit: r.log.commit, Joining: !r.configs.known()})
}

func (r *RawNode) handleHeartbeat(m Message) {
	if !r.admit(m) {
		r.reject(m, MsgHeartbeatResp)
		return
	}
	r.learnCommit(m.Commit, m.Ballot)
	// Slot echoes the commit index we were told, so the leader can tell
	// "lagging" (ours is lower) from "told before the last choice".
	// With leases on, echoing the round vouches for the leader's lease:
	// this acceptor now grants no other proposer's Prepare for
	// ElectionTicks (admit reset electionElapsed). Without, it vouches
	// for nothing, and the leader counts it for no lease.
	resp := Message{Type: MsgHeartbeatResp, To: m.From, Ballot: m.Ballot, Commit: r.log.commit, Slot: m.Commit, Context: m.Context,
		Joining: !r.configs.known()}
	if r.cfg.ReadLease {
		resp.Seq = m.Seq
	}
	r.send(resp)
}

func (r *RawNode) handleSnapshot(m Message) {
	if !r.admit(m) {
		r.reject(m, MsgHeartbeatResp)
		return
	}
	// A joiner takes any snapshot: it is its first configuration.
	if m.Snapshot.Slot > r.log.commit || !r.configs.known() {
		r.installSnapshot(*m.Snapshot)
	}
	r.learnCommit(m.Commit, m.Ballot)
	r.send(Message{Type: MsgHeartbeatResp, To: m.From, Ballot: m.Ballot, Commit: r.log.commit, Slot: m.Commit})
}

// installSnapshot takes the chosen prefix up to snap.Slot from a snapshot.
func (r *RawNode) installSnapshot(snap Snapshot) {
	configs, err := newConfigSet(r.configs.alpha, snap.Configs)
	if err == nil && !configs.known() {
		err = fmt.Errorf("no configuration")
	}
	if err != nil {
		panic("paxos: snapshot from the leader: " + err.Error())
	}
	r.log.install(snap)
	r.configs = configs
	r.snapOut = &snap
}

// learnCommit learns which slots are chosen from the leader's commit
// index. A slot's value is known only if this acceptor accepted it from
// this very leader: at ballot b the leader proposes one value per slot,
// and for a chosen slot that is the chosen value. An entry accepted at
// another ballot may be a value that lost; the leader sends the slot again
// (catch-up) and the next heartbeat finishes the job.
//
// A joiner learns nothing: it has no base to apply chosen slots on, nor a
// configuration to take the configurations chosen there after.
func (r *RawNode) learnCommit(leaderCommit uint64, b Ballot) {
	if !r.configs.known() {
		return
	}
	from := r.log.commit + 1
	s := from
	for ; s <= leaderCommit; s++ {
		if e, ok := r.log.get(s); !ok || e.Ballot != b {
			break
		}
		r.log.markChosen(s)
	}
	if s > from {
		r.onCommit(from, s-1)
	}
}
