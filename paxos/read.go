package paxos

import "github.com/quorumkv/quorumkv/quorum"

// Linearizable reads through the leader, confirmed by a quorum round or
// served from the leader's lease.
//
// A read may be served from the leader's state only if no other leader
// has chosen anything the read would miss. The leader notes the last slot
// it has filled (the read index: every write acknowledged so far is at or
// below it, including the slots it took over from its predecessor) and
// sends a heartbeat carrying the read's context. When a phase-2 quorum of
// every governing configuration answers at its ballot, none of those
// acceptors had promised a higher ballot when it answered. A rival leader
// needs a phase-1 quorum, which meets that phase-2 quorum: the acceptor in
// both promised the rival only after answering us, so the rival's slots
// come after the read in real time and the read may be ordered before
// them. The read is then served once the application has applied the read
// index.
//
// The round costs a round trip per batch of reads but assumes nothing
// about clocks. With Config.ReadLease a leader whose lease holds serves
// the read at once, at the same read index, once the application has
// applied it (lease.go): no other leader can exist yet, provided the
// nodes' ticks run at nearly the same rate. Reads the lease cannot serve
// (a new leader's, or after the lease ran out, a transfer or
// ForgetLease) wait for a round as above.
type reads struct {
	pending []*pendingRead
}

type pendingRead struct {
	index uint64
	ctx   []byte
	acks  map[uint64]bool
}

func (rs *reads) lastContext() []byte {
	if len(rs.pending) == 0 {
		return nil
	}
	return rs.pending[len(rs.pending)-1].ctx
}

func (r *RawNode) readIndex(ctx []byte) error {
	l := r.lead
	if r.leaseValid() {
		r.readStates = append(r.readStates, ReadState{Index: l.next - 1, Context: ctx})
		return nil
	}
	if len(l.reads.pending) >= r.cfg.MaxPendingReads {
		return ErrProposalDropped
	}
	l.reads.pending = append(l.reads.pending, &pendingRead{index: l.next - 1, ctx: ctx, acks: map[uint64]bool{r.id: true}})
	r.releaseReads() // a one-node group needs no round
	if len(l.reads.pending) > 0 {
		r.broadcastHeartbeat(ctx)
	}
	return nil
}

// confirmRead counts an acknowledgement of the heartbeat that carried
// ctx. It confirms that read and every read requested before it: they
// were all pending when that heartbeat was sent.
func (r *RawNode) confirmRead(from uint64, ctx []byte) {
	if ctx == nil {
		return
	}
	rs := r.lead.reads.pending
	for i, rd := range rs {
		if string(rd.ctx) == string(ctx) {
			for _, p := range rs[:i+1] {
				p.acks[from] = true
			}
			break
		}
	}
	r.releaseReads()
}

func (r *RawNode) releaseReads() {
	l := r.lead
	sys := r.governing()
	for len(l.reads.pending) > 0 {
		rd := l.reads.pending[0]
		if !sys.IsQuorum(quorum.Phase2, func(id uint64) bool { return rd.acks[id] }) {
			return
		}
		r.readStates = append(r.readStates, ReadState{Index: rd.index, Context: rd.ctx})
		l.reads.pending = l.reads.pending[1:]
	}
}
