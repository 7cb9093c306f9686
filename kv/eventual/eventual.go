package eventual

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/command"
	"github.com/quorumkv/quorumkv/kv/records"
	"github.com/quorumkv/quorumkv/kv/store"
	"github.com/quorumkv/quorumkv/kv/transport"
	"github.com/quorumkv/quorumkv/quorum"
	"github.com/quorumkv/quorumkv/wrn"
)

// The coordinator of eventual keyspaces (DESIGN.md §5). Any node
// coordinates any key: a write goes to all N replicas of the key's range
// and is acknowledged after W durable acks; a read asks all N and answers
// after R replies with the newest record. Every request to a replica,
// the node's own included, goes through the node's ReplicaNet
// (replicacall.go), and each operation is a state machine fed by the
// answers, so that the simulator can drive it.

// Defaults for the coordinator, used when NodeConfig leaves them zero.
const (
	// DefaultReplicaTimeout bounds one replica's answer to a coordinator.
	// Too low fails writes and reads on a slow disk; too high keeps a
	// request on a hung replica until the client's own deadline.
	DefaultReplicaTimeout = 2 * time.Second
	// DefaultMaxReadRepairs bounds read repairs in flight on a node (one
	// peer request each). Too low drops repairs under load (anti-entropy
	// then repairs later; dropped ones are counted); too high lets a burst
	// of stale reads hold that many peer requests.
	DefaultMaxReadRepairs = 64
	// clockMaxOffset is the largest clock offset between nodes the HLC
	// tolerates (see wrn.NewClock).
	clockMaxOffset = 500 * time.Millisecond
)

// FormatRecordVersion shows an eventual version: WALL.LOGICAL.NODE.
func FormatRecordVersion(v wrn.Version) string {
	return strconv.FormatInt(v.Timestamp.WallTime, 10) + "." + strconv.FormatUint(uint64(v.Timestamp.Logical), 10) +
		"." + strconv.FormatUint(v.Node, 10)
}

// observeVersion moves the clock past a version seen in a read or write,
// so that a later write coordinated here orders after it. A version too
// far ahead is not followed (this clock would then run ahead of physical
// time); it tells the clock guard that this node's clock may be behind
// (eventual_clock.go, rule 3). The record still counts, as last writer
// wins demands.
func (c *Coordinator) observeVersion(v wrn.Version) {
	if err := c.advanceClockPast(v); err != nil {
		c.store.Logger.Debug("not following a version's clock", "version", v, "err", err)
	}
}

// advanceClockPast moves the clock past v, so that its next reading is
// greater than v, or says why it cannot.
func (c *Coordinator) advanceClockPast(v wrn.Version) error {
	if v.IsZero() {
		return nil
	}
	_, err := c.Clock.Update(v.Timestamp)
	if errors.Is(err, wrn.ErrClockOffset) && !c.clockGuard.SawAhead(v.Timestamp.WallTime) {
		c.store.Logger.Warn("a version far ahead of this node's clock: corrupt, or a clock badly off", "version", v)
	}
	return err
}

// eventualQuorums returns the write and read quorums of range r of
// eventual keyspace ks for a request overriding them with q.
func (c *Coordinator) eventualQuorums(ks catalog.KeyspaceDescriptor, r *catalog.RangeDescriptor, q catalog.QuorumOverride) (wrn.Quorums, error) {
	ids := make([]uint64, len(r.Replicas))
	for i, rep := range r.Replicas {
		ids[i] = rep.NodeID
	}
	overridden := q != catalog.QuorumOverride{}
	if ks.W == 0 {
		// A geometry's write sets (phase 2) and read sets (phase 1).
		if overridden {
			return wrn.Quorums{}, fmt.Errorf("%w: keyspace %s: its %s geometry defines the write and read sets; w and r cannot override it",
				catalog.ErrInvalidArgument, ks.Name, ks.Quorum)
		}
		nodes := make([]quorum.Node, len(r.Replicas))
		for i, rep := range r.Replicas {
			nodes[i] = quorum.Node{ID: rep.NodeID, Zone: rep.Zone, Weight: rep.Weight}
		}
		sys, err := quorum.Parse(ks.Quorum, nodes)
		if err != nil {
			return wrn.Quorums{}, fmt.Errorf("%w: keyspace %s: %v", catalog.ErrInvalidArgument, ks.Name, err)
		}
		return wrn.GeometryQuorums(sys), nil
	}
	size := func(count int, level string, def int) (int, error) {
		if level != "" {
			return wrn.ResolveSize(level, len(ids))
		}
		return cmp.Or(count, def), nil
	}
	w, err := size(q.W, q.WLevel, ks.W)
	if err != nil {
		return wrn.Quorums{}, fmt.Errorf("%w: keyspace %s: %w", catalog.ErrInvalidArgument, ks.Name, err)
	}
	rr, err := size(q.R, q.RLevel, ks.R)
	if err != nil {
		return wrn.Quorums{}, fmt.Errorf("%w: keyspace %s: %w", catalog.ErrInvalidArgument, ks.Name, err)
	}
	qs, err := wrn.SizeQuorums(ids, w, rr)
	if err != nil {
		return wrn.Quorums{}, fmt.Errorf("%w: keyspace %s: %w", catalog.ErrInvalidArgument, ks.Name, err)
	}
	return qs, nil
}

// writeEventual writes rec (a value or a tombstone, without a version)
// to every replica of r and returns once W of them stored it durably. The
// replicas that have not answered by then still get it. Its errors say
// what the client may assume (docs/api.md):
//
//   - ErrUnavailable: nothing was written and nothing will be. Gossip
//     sees too few replicas alive to meet W (checked before anything is
//     sent), or every replica refused the write before storing it and no
//     hint holds it. A retry is safe.
//   - ErrOutcomeUnknown: W was not met, but some replica stored the
//     write, may have (it did not answer in time), or a hint holds it for
//     one: reads may see it, and hints and anti-entropy spread it.
func (c *Coordinator) Write(ctx context.Context, ks catalog.KeyspaceDescriptor, r *catalog.RangeDescriptor, key []byte, rec wrn.Record,
	q catalog.QuorumOverride) (wrn.Version, bool, error) {
	op, err := c.NewEventualWrite(ks, r, key, rec, q)
	if err != nil {
		return wrn.Version{}, false, err
	}
	res, err := await(ctx, op.Start, op.progress)
	if err != nil {
		return wrn.Version{}, false, err
	}
	return op.Rec.Version, res.existed, res.Err
}

// NewEventualWrite is writeEventual's operation, not started yet: rec
// versioned by this node's clock, to be written with the quorums of ks
// overridden by q. It refuses a write that cannot meet W (checkWritable).
func (c *Coordinator) NewEventualWrite(ks catalog.KeyspaceDescriptor, r *catalog.RangeDescriptor, key []byte, rec wrn.Record, q catalog.QuorumOverride) (*writeOp, error) {
	qs, err := c.eventualQuorums(ks, r, q)
	if err != nil {
		return nil, err
	}
	if err := c.checkWritable(ks, r, qs, "a write"); err != nil {
		return nil, err
	}
	rec, at, err := c.stamp(rec)
	if err != nil {
		return nil, err
	}
	op := c.newWriteOp(ks, r, qs, key, rec)
	op.stamped, op.own, op.q = at, true, q
	op.guarded = !c.clockGuard.Trusted(at)
	if op.guarded && !c.otherReplicaAlive(r) {
		// Its own replica would wait for another's acceptance forever.
		c.store.Config.Metrics.ClockOffsetRefusals.WithLabelValues("coordinator").Inc()
		return nil, fmt.Errorf("%w: keyspace %s range %d: this node's clock was not confirmed by another replica within %v, "+
			"and gossip sees no other replica of the range alive to confirm it; nothing was written", store.ErrUnavailable, ks.Name, r.ID, ClockTrustWindow)
	}
	return op, nil
}

// otherReplicaAlive says whether r has a replica on another node, or
// none here, that gossip sees alive: one that can take a version before
// this node's own replica does (eventual_clock.go, rule 2).
func (c *Coordinator) otherReplicaAlive(r *catalog.RangeDescriptor) bool {
	self := c.store.NodeID()
	if !r.HasReplica(self) || len(r.Replicas) == 1 {
		return true
	}
	for _, rep := range r.Replicas {
		if rep.NodeID != self && c.replicaAlive(rep.NodeID) {
			return true
		}
	}
	return false
}

// stamp gives rec a new version, a reading of the node's clock, and
// returns it with the monotonic clock read then (clockGuard). It refuses
// a reading more than the maximum clock offset ahead of the physical
// clock (eventual_clock.go, rule 3): the physical clock was stepped back
// behind versions this node already stamped, and every replica, its own
// included, would refuse the version.
func (c *Coordinator) stamp(rec wrn.Record) (wrn.Record, ClockReading, error) {
	ts, err := c.Clock.Now()
	if err != nil {
		return wrn.Record{}, ClockReading{}, err
	}
	if err := c.clockGuard.RunAhead(ts.WallTime); err != nil {
		c.store.Config.Metrics.ClockOffsetRefusals.WithLabelValues("coordinator").Inc()
		return wrn.Record{}, ClockReading{}, err
	}
	rec.Version = wrn.Version{Timestamp: ts, Node: c.store.NodeID()}
	return rec, c.clockGuard.Reading(ts.WallTime), nil
}

// replicaAlive says whether gossip sees node id alive (this node always).
func (c *Coordinator) replicaAlive(id uint64) bool {
	if id == c.store.NodeID() {
		return true
	}
	nd, ok := c.store.Catalog().Nodes[id]
	return ok && c.alive(nd)
}

// checkWritable refuses, before anything is sent, a write coordinated
// here that could not meet qs's write sets: this node's clock is behind
// (eventual_clock.go, rule 3), or gossip sees too few of r's replicas
// alive. what names the write, for the error. A sloppy keyspace counts
// hints toward W, so only its clock is checked.
func (c *Coordinator) checkWritable(ks catalog.KeyspaceDescriptor, r *catalog.RangeDescriptor, qs wrn.Quorums, what string) error {
	if err := c.coordinatorClockErr(); err != nil {
		return err
	}
	if ks.SloppyQuorum {
		return nil
	}
	return c.checkAlive(ks, r, qs.NewWrite(false), what, qs.WriteSets())
}

// checkAlive refuses a request whose tracker tr (fresh) fails with the
// replicas gossip sees down: sets names the quorums it needs. The error
// is a NoQuorumError, so that clients try the other nodes once and then
// give up at once rather than wait for their deadline.
func (c *Coordinator) checkAlive(ks catalog.KeyspaceDescriptor, r *catalog.RangeDescriptor, tr interface {
	Ack(uint64)
	Fail(uint64, string)
	State() wrn.State
}, what, sets string) error {
	cat := c.store.Catalog()
	name := func(id uint64) string {
		if nd, ok := cat.Nodes[id]; ok {
			return nd.Name
		}
		return fmt.Sprintf("node %d", id)
	}
	nq := &store.NoQuorumError{RangeID: r.ID, Phase: quorum.Phase2, Need: sets}
	for _, rep := range r.Replicas {
		if c.replicaAlive(rep.NodeID) {
			tr.Ack(rep.NodeID)
			nq.Heard = append(nq.Heard, name(rep.NodeID))
		} else {
			tr.Fail(rep.NodeID, "down")
			nq.Silent = append(nq.Silent, name(rep.NodeID))
		}
	}
	if tr.State() != wrn.Failed {
		return nil
	}
	return fmt.Errorf("%w; gossip sees %s down, so %s of keyspace %s was refused: nothing was written",
		nq, strings.Join(nq.Silent, ", "), what, ks.Name)
}

// writeOp is one eventual write of a versioned record to every replica of
// its range. It is decided once W replicas stored it durably, or once it
// failed (the tracker says W cannot be met) and every replica answered,
// so that the error can say whether anything was written. A replica that
// fails or does not answer in time gets a hint (hintWrite); one that
// refused the write definitely (refused) does not: it would refuse the
// hint too.
//
// Only W replicas are asked to answer once the record is durable: this
// node's own first, then others from a place the key's hash picks. The
// others get the write lazily (ReplicaRequest.Lazy): they store it and
// answer without waiting for their WAL's sync, which any later synced
// write on that node makes (a WAL syncs in order), and their answers do
// not count toward W. Should one of the W fail, every lazy replica is
// asked again, synced, and counts as the others do. So a W=1 write
// waits for one sync, the coordinator's own, and costs each other
// replica no sync of its own. Where W is not a size (a geometry's write
// sets), or the write is guarded or counts hints (sloppy), every replica
// is asked synced, as before.
type writeOp struct {
	n   *Coordinator
	ks  catalog.KeyspaceDescriptor
	r   *catalog.RangeDescriptor
	key []byte
	Rec wrn.Record
	// own: the version was stamped here, at stamped; guarded: this node's
	// clock was not trusted then, so its own replica gets the record, and
	// replicas that fail get a hint, only once another replica accepted
	// the version (eventual_clock.go, rule 2).
	own     bool
	stamped ClockReading
	guarded bool
	// q overrides the keyspace's quorums, for a reroute (split.go);
	// reroutes counts the routings before this one.
	q        catalog.QuorumOverride
	reroutes int
	// w is the write quorum's size, 0 if it is not a size (wrn.Quorums.W).
	w  int
	mu struct {
		sync.Mutex
		tr       *wrn.WriteTracker
		answered int // replicas answered, or given up on (held, never sent)
		// The answers: stored it, refused it definitely, failed with the
		// outcome unknown; and hints stored, or being stored. moved
		// counts the refusals of replicas that no longer hold the key's
		// range (store.ErrKeyMoved).
		stored, refused, unsure, hinted, hinting, moved int
		existed                                         bool
		// confirmed: another replica stored the version. held: this
		// node's own replica waits for that; waiting: replicas that
		// failed before it, whose hints wait for it too.
		confirmed bool
		held      bool
		waiting   []uint64
		// lazy are the replicas sent the write lazily and not asked
		// again synced; lazyInflight counts the lazy sends not answered
		// yet, and lazyStored the replicas whose lazy send stored the
		// record; storedBy those whose synced send did.
		lazy         []uint64
		lazyInflight int
		lazyStored   []uint64
		storedBy     []uint64
		done         func(WriteResult) // nil once called
	}
}

// WriteResult is a decided write: whether the key held a live value on a
// replica that acknowledged, or the error.
type WriteResult struct {
	existed bool
	Err     error
}

func (c *Coordinator) newWriteOp(ks catalog.KeyspaceDescriptor, r *catalog.RangeDescriptor, qs wrn.Quorums, key []byte, rec wrn.Record) *writeOp {
	o := &writeOp{n: c, ks: ks, r: r, key: key, Rec: rec, w: qs.W()}
	o.mu.tr = qs.NewWrite(ks.SloppyQuorum)
	return o
}

// Start sends the record to every replica (this node's own one maybe
// later, see guarded); done is called once, when the write is decided.
func (o *writeOp) Start(done func(WriteResult)) {
	self := o.n.store.NodeID()
	var to []uint64
	o.mu.Lock()
	o.mu.done = done
	for _, rep := range o.r.Replicas {
		if rep.NodeID == self && o.guarded && len(o.r.Replicas) > 1 {
			o.mu.held = true
			continue
		}
		to = append(to, rep.NodeID)
	}
	lazy := o.lazyOf(to)
	o.mu.lazy, o.mu.lazyInflight = lazy, len(lazy)
	o.mu.Unlock()
	for _, id := range to {
		if slices.Contains(lazy, id) {
			o.sendLazy(id)
		} else {
			o.send(id)
		}
	}
}

// lazyOf returns the replicas of to that get the write lazily: all but W
// of them, when the write qualifies (see writeOp). The W are this node's
// own replica, then the others gossip sees alive, then the rest, each
// from the place the key's hash picks among to.
func (o *writeOp) lazyOf(to []uint64) []uint64 {
	if o.w == 0 || o.w >= len(to) || o.guarded || o.mu.held || o.ks.SloppyQuorum {
		return nil
	}
	self := o.n.store.NodeID()
	order := make([]uint64, 0, len(to))
	if slices.Contains(to, self) {
		order = append(order, self)
	}
	start := int(catalog.HashKey(o.key) % uint64(len(to)))
	for _, alive := range []bool{true, false} {
		for i := range to {
			if id := to[(start+i)%len(to)]; id != self && o.n.replicaAlive(id) == alive {
				order = append(order, id)
			}
		}
	}
	return order[o.w:]
}

func (o *writeOp) send(to uint64) {
	req := ReplicaRequest{Kind: ReqWrite, RangeID: o.r.ID, Key: o.key, Rec: o.Rec}
	o.n.net.Call(to, req, func(a ReplicaAnswer) { o.answer(to, a) })
}

func (o *writeOp) sendLazy(to uint64) {
	req := ReplicaRequest{Kind: ReqWrite, RangeID: o.r.ID, Key: o.key, Rec: o.Rec, Lazy: true}
	o.n.net.Call(to, req, func(a ReplicaAnswer) { o.answerLazy(to, a) })
}

// answerLazy takes a lazy send's answer. A lazy replica that stored the
// record confirms this node's clock, as any replica's acceptance does,
// but does not count toward W. One that failed before it was asked again
// synced counts as a failed replica (and gets a hint), as a synced send's
// failure would.
func (o *writeOp) answerLazy(from uint64, a ReplicaAnswer) {
	self := o.n.store.NodeID()
	var hint bool
	o.mu.Lock()
	tr := o.mu.tr
	o.mu.lazyInflight--
	pending := slices.Contains(o.mu.lazy, from) // not asked again synced
	switch {
	case a.Err == nil:
		o.mu.lazyStored = append(o.mu.lazyStored, from)
		o.mu.existed = o.mu.existed || a.Existed
		if from != self && !o.mu.confirmed {
			o.mu.confirmed = true
			if o.own {
				o.n.clockGuard.Confirm(o.stamped)
			}
		}
		if o.n.evHooks.LazyCountsTowardW && pending {
			tr.Ack(from)
		}
	case !pending:
		// Asked again synced: that answer counts.
	case transport.Refused(a.Err):
		o.mu.lazy = slices.DeleteFunc(o.mu.lazy, func(id uint64) bool { return id == from })
		o.mu.answered++
		o.mu.refused++
		if transport.KeyMoved(a.Err) {
			o.mu.moved++
		}
		tr.Fail(from, a.Err.Error())
	default:
		o.mu.lazy = slices.DeleteFunc(o.mu.lazy, func(id uint64) bool { return id == from })
		o.mu.answered++
		o.mu.unsure++
		tr.Fail(from, a.Err.Error())
		hint = from != self
	}
	if hint {
		o.mu.hinting++
	}
	done, res := o.settle()
	o.mu.Unlock()
	if hint {
		o.hint(from)
	}
	if done != nil {
		done(res)
	}
}

func (o *writeOp) answer(from uint64, a ReplicaAnswer) {
	self := o.n.store.NodeID()
	var sendOwn bool
	var hint []uint64
	o.mu.Lock()
	tr := o.mu.tr
	o.mu.answered++
	switch {
	case a.Err == nil:
		o.mu.stored++
		o.mu.storedBy = append(o.mu.storedBy, from)
		o.mu.existed = o.mu.existed || a.Existed
		tr.Ack(from)
		if from != self && !o.mu.confirmed {
			o.mu.confirmed = true
			if o.own {
				o.n.clockGuard.Confirm(o.stamped)
			}
			sendOwn, o.mu.held = o.mu.held, false
			hint, o.mu.waiting = o.mu.waiting, nil
		}
	case transport.Refused(a.Err):
		o.mu.refused++
		if transport.KeyMoved(a.Err) {
			o.mu.moved++
		}
		tr.Fail(from, a.Err.Error())
	default:
		o.mu.unsure++
		tr.Fail(from, a.Err.Error())
		switch {
		case from == self:
			// A hint here would fail alike.
		case o.mu.confirmed || !o.guarded:
			hint = append(hint, from)
		default:
			o.mu.waiting = append(o.mu.waiting, from)
		}
	}
	if o.mu.held && o.mu.answered == len(o.r.Replicas)-1 {
		// Every other replica answered and none stored the version: this
		// node's clock may be ahead of all of theirs, so its own replica
		// does not get it either, and no hint is stored.
		o.mu.held = false
		o.mu.answered++
		o.mu.refused++
		tr.Fail(self, "not sent: no other replica accepted the version, so this node's clock could not be checked")
	}
	var promote []uint64
	if a.Err != nil {
		// A replica W counted on failed: the lazy ones are asked again,
		// synced, to make up for it.
		promote, o.mu.lazy = o.mu.lazy, nil
	}
	o.mu.hinting += len(hint)
	done, res := o.settle()
	o.mu.Unlock()
	for _, id := range promote {
		o.send(id)
	}
	if sendOwn {
		o.send(self)
	}
	for _, to := range hint {
		o.hint(to)
	}
	if done != nil {
		done(res)
	}
}

// hint stores a hint for replica to, which failed, then settles.
func (o *writeOp) hint(to uint64) {
	ok := o.n.hintWrite(to, o.r.ID, o.key, o.Rec)
	o.mu.Lock()
	o.mu.hinting--
	if ok {
		o.mu.hinted++
		o.mu.tr.Hinted(to)
	}
	done, res := o.settle()
	o.mu.Unlock()
	if done != nil {
		done(res)
	}
}

// settle returns the done function and the result if the write is
// decided now and was not before. o.mu is held.
func (o *writeOp) settle() (func(WriteResult), WriteResult) {
	if o.mu.done == nil {
		return nil, WriteResult{}
	}
	var res WriteResult
	switch o.mu.tr.State() {
	case wrn.Done:
		res.existed = o.mu.existed
	case wrn.Failed:
		if o.mu.answered < len(o.r.Replicas) || o.mu.hinting > 0 || o.mu.held || o.mu.lazyInflight > 0 {
			return nil, WriteResult{} // the error counts every replica
		}
		res.Err = o.failure()
		if nr := o.n.rerouteOf(o.r, o.key, o.mu.moved, o.reroutes); nr != nil {
			done := o.mu.done
			o.mu.done = nil
			return func(WriteResult) { o.reroute(nr, res.Err, done) }, WriteResult{}
		}
	default:
		return nil, WriteResult{}
	}
	done := o.mu.done
	o.mu.done = nil
	return done, res
}

// failure is the error of a write that missed W, once every replica
// answered. o.mu is held.
func (o *writeOp) failure() error {
	m := &o.mu
	lazyOnly := 0 // replicas that stored it lazily, and not since synced
	for _, id := range m.lazyStored {
		if !slices.Contains(m.storedBy, id) {
			lazyOnly++
		}
	}
	if (m.stored == 0 && m.unsure == 0 && m.hinted == 0 && lazyOnly == 0) || o.n.evHooks.UnavailableAfterPartialWrite {
		return fmt.Errorf("%w: keyspace %s range %d: every replica refused the write of key %q, so nothing was written: %w",
			store.ErrUnavailable, o.ks.Name, o.r.ID, command.Abbreviate(o.key), m.tr.Err())
	}
	return fmt.Errorf("%w: keyspace %s range %d: the write of key %q (version %s) missed W: stored on %d of %d replicas "+
		"(and without a sync on %d), %d did not answer, %d refused, %d hints held; reads may see it, and hints and anti-entropy spread it to the others: %w",
		store.ErrOutcomeUnknown, o.ks.Name, o.r.ID, command.Abbreviate(o.key), FormatRecordVersion(o.Rec.Version), m.stored, len(o.r.Replicas),
		lazyOnly, m.unsure, m.refused, m.hinted, m.tr.Err())
}

// progress describes an undecided write, for a request that gave up.
func (o *writeOp) progress() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return fmt.Sprintf("keyspace %s: stored on %d of %d replicas so far: %v", o.ks.Name, o.mu.stored, len(o.r.Replicas), o.mu.tr.Err())
}

// readEventual asks every replica of r for key's record and returns the
// newest once R answered (the zero Record if none holds the key); see
// readOp.
func (c *Coordinator) Read(ctx context.Context, ks catalog.KeyspaceDescriptor, r *catalog.RangeDescriptor, key []byte, q catalog.QuorumOverride) (wrn.Record, error) {
	op, err := c.NewEventualRead(ks, r, key, q)
	if err != nil {
		return wrn.Record{}, err
	}
	res, err := await(ctx, op.Start, op.progress)
	if err != nil {
		return wrn.Record{}, err
	}
	return res.Rec, res.Err
}

// NewEventualRead is readEventual's operation, not started yet.
func (c *Coordinator) NewEventualRead(ks catalog.KeyspaceDescriptor, r *catalog.RangeDescriptor, key []byte, q catalog.QuorumOverride) (*readOp, error) {
	qs, err := c.eventualQuorums(ks, r, q)
	if err != nil {
		return nil, err
	}
	op := c.newReadOp(ks, r, qs, key)
	op.measured, op.q = true, q
	return op, nil
}

// readOp is one eventual read of a key from every replica of its range.
// It is decided once R replicas answered (the newest of their records
// wins) or, failed, once every replica answered. The stale replicas among
// the first R are then repaired with the winner (readRepair).
//
// The answers that come after the read was decided are still collected:
// once every replica answered, the read counts as stale if one of them
// held a newer version than the one returned (the staleness measure of
// issue 6: quorumkv_wrn_stale_reads_total over quorumkv_wrn_reads_total),
// and every replica older than the newest of all answers is repaired with
// it. A replica that never answers within the replica timeout cannot make
// the read stale, so under faults the measured rate is a lower bound.
type readOp struct {
	n   *Coordinator
	ks  catalog.KeyspaceDescriptor
	r   *catalog.RangeDescriptor
	key []byte
	mu  struct {
		sync.Mutex
		tr       *wrn.ReadTracker
		answered int
		failed   int                   // answers that were errors
		moved    int                   // of them, refusals of replicas that no longer hold the key's range
		answers  map[uint64]wrn.Record // the read's own answers, until decided
		late     map[uint64]wrn.Record // the answers after it was decided
		res      wrn.Record            // the record returned, once decided
		done     func(ReadResult)      // nil once called
	}
	// measured: a client's read, counted in the staleness metrics (a
	// compare-and-swap's own reads are not).
	measured bool
	// q overrides the keyspace's quorums, for a reroute (split.go);
	// reroutes counts the routings before this one.
	q        catalog.QuorumOverride
	reroutes int
	// Stale, if set, is told at the end whether the read returned a stale
	// record, and whether every replica answered without an error
	// (tests).
	Stale func(stale, complete bool)
}

// ReadResult is a decided read: the newest record of a read quorum, or
// the error.
type ReadResult struct {
	Rec wrn.Record
	Err error
}

func (c *Coordinator) newReadOp(ks catalog.KeyspaceDescriptor, r *catalog.RangeDescriptor, qs wrn.Quorums, key []byte) *readOp {
	o := &readOp{n: c, ks: ks, r: r, key: key}
	o.mu.tr = qs.NewRead()
	o.mu.answers = map[uint64]wrn.Record{}
	return o
}

// Start asks every replica; done is called once, when the read is
// decided.
func (o *readOp) Start(done func(ReadResult)) {
	o.mu.done = done
	req := ReplicaRequest{Kind: ReqRead, RangeID: o.r.ID, Key: o.key}
	for _, rep := range o.r.Replicas {
		from := rep.NodeID
		o.n.net.Call(from, req, func(a ReplicaAnswer) { o.answer(from, a) })
	}
}

func (o *readOp) answer(from uint64, a ReplicaAnswer) {
	o.mu.Lock()
	tr := o.mu.tr
	o.mu.answered++
	if a.Err != nil {
		o.mu.failed++
		if transport.KeyMoved(a.Err) {
			o.mu.moved++
		}
	}
	all := o.mu.answered == len(o.r.Replicas)
	if o.mu.late != nil {
		// Decided already: collect for the staleness measure.
		if a.Err == nil {
			o.mu.late[from] = a.Rec
		}
		if all {
			o.settle()
		}
		o.mu.Unlock()
		return
	}
	if a := o.n.readable(o.r, from, a); a.Err != nil {
		tr.Fail(from, a.Err.Error())
	} else {
		tr.Reply(from, a.Rec)
		o.mu.answers[from] = a.Rec
	}
	var res ReadResult
	switch tr.State() {
	case wrn.Done:
		res.Rec = tr.Result()
		o.mu.res = res.Rec
		o.mu.late = map[uint64]wrn.Record{}
	case wrn.Failed:
		if !all {
			o.mu.Unlock()
			return
		}
		res.Err = fmt.Errorf("%w: keyspace %s range %d: %w", store.ErrUnavailable, o.ks.Name, o.r.ID, tr.Err())
		if nr := o.n.rerouteOf(o.r, o.key, o.mu.moved, o.reroutes); nr != nil {
			done := o.mu.done
			o.mu.done = nil
			o.mu.Unlock()
			o.reroute(nr, done)
			return
		}
	default:
		o.mu.Unlock()
		return
	}
	done := o.mu.done
	o.mu.done = nil
	var stale []uint64
	if res.Err == nil {
		stale = tr.Stale()
		if all {
			o.settle()
		}
	}
	o.mu.Unlock()
	if res.Err == nil {
		o.n.observeVersion(res.Rec.Version)
		o.n.readRepair(o.r.ID, o.key, res.Rec, stale)
		if o.measured {
			o.n.store.Config.Metrics.WRNReads.WithLabelValues(o.ks.Name).Inc()
			o.n.store.Config.Metrics.WRNStaleReads.WithLabelValues(o.ks.Name).Add(0) // exported at 0 until a stale read
		}
	}
	done(res)
}

// settle ends a decided read once every replica answered: it counts the
// read stale if a late answer was newer than the record returned, and
// repairs every replica older than the newest answer (the read's own
// answerers were repaired with the returned record already, which is the
// newest unless the read was stale). o.mu is held.
func (o *readOp) settle() {
	newest := o.mu.res
	for _, rec := range o.mu.late {
		newest = wrn.Merge(newest, rec)
	}
	stale := o.mu.res.Version.Less(newest.Version)
	if stale {
		if o.measured {
			o.n.store.Config.Metrics.WRNStaleReads.WithLabelValues(o.ks.Name).Inc()
		}
		o.n.observeVersion(newest.Version)
		maps.Copy(o.mu.late, o.mu.answers)
	}
	var repair []uint64
	for id, rec := range o.mu.late {
		if rec.Version.Less(newest.Version) {
			repair = append(repair, id)
		}
	}
	slices.Sort(repair)
	o.n.readRepair(o.r.ID, o.key, newest, repair)
	if o.Stale != nil {
		o.Stale(stale, o.mu.failed == 0)
	}
}

// progress describes an undecided read, for a request that gave up.
func (o *readOp) progress() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return fmt.Sprintf("keyspace %s: %v", o.ks.Name, o.mu.tr.Err())
}

// readRepair writes the winner of a read back to the stale replicas the
// read saw, in the background, at most maxRepairs in flight on the node;
// a repair that finds no free slot is dropped (and counted), left to a
// later read or to anti-entropy.
func (c *Coordinator) readRepair(rangeID uint64, key []byte, winner wrn.Record, stale []uint64) {
	repairs := c.store.Config.Metrics.ReadRepairs
	req := ReplicaRequest{Kind: ReqWrite, RangeID: rangeID, Key: key, Rec: winner}
	for _, to := range stale {
		select {
		case c.repairSlots <- struct{}{}:
		default:
			repairs.WithLabelValues("dropped").Inc()
			continue
		}
		c.net.Call(to, req, func(a ReplicaAnswer) {
			<-c.repairSlots
			if a.Err != nil {
				repairs.WithLabelValues("failed").Inc()
				c.store.Logger.Debug("read repair failed", "range", rangeID, "node-id", to, "err", a.Err)
				return
			}
			repairs.WithLabelValues("ok").Inc()
		})
	}
}

// Close stops the hint replay and anti-entropy loops, then waits for
// the background work to finish: read repairs, replays and exchanges
// under way, and replica requests of eventual writes and reads that
// outlived their request (each bounded by the replica timeout). It may be
// called more than once.
func (c *Coordinator) Close() {
	c.Loops.Close()
	c.Inflight.Wait()
	c.recordStreams.Close()
}

// Lookup finds keyspace's descriptor and the range of key, whatever the
// keyspace's mode.
func (c *Coordinator) Lookup(keyspace string, key []byte) (catalog.KeyspaceDescriptor, *catalog.RangeDescriptor, error) {
	if err := c.limits.CheckKey(key); err != nil {
		return catalog.KeyspaceDescriptor{}, nil, err
	}
	cat := c.store.Catalog()
	ks, ok := cat.Keyspaces[keyspace]
	if !ok {
		if err := catalog.CheckKeyspaceName(keyspace); err != nil {
			return catalog.KeyspaceDescriptor{}, nil, err
		}
		return catalog.KeyspaceDescriptor{}, nil, fmt.Errorf("%w: %q (kvctl keyspace list shows them)", catalog.ErrNoKeyspace, keyspace)
	}
	spans := cat.Spans[keyspace]
	return ks, cat.Ranges[keyspace][catalog.SpanIndex(spans, catalog.HashKey(key))], nil
}

// scanEventual scans an eventual keyspace: per range, the records of at
// least R replicas merged (newest wins), tombstones hidden; then the
// ranges split since (scanSplitSince).
func (c *Coordinator) ScanKeyspace(ctx context.Context, ks catalog.KeyspaceDescriptor, prefix, startAfter []byte, limit int) ([]catalog.KeyValue, bool, error) {
	scanned := c.store.Catalog().Ranges[ks.Name]
	if h := c.evHooks.ScanRanges; h != nil && h(ks.Name) != nil {
		scanned = h(ks.Name)
	}
	byRange := map[uint64][]catalog.KeyValue{}
	for _, r := range scanned {
		kvs, err := c.scanEventualRange(ctx, ks, r, prefix, startAfter, limit+1)
		if err != nil {
			return nil, false, err
		}
		byRange[r.ID] = kvs
	}
	if err := c.scanSplitSince(ctx, ks, scanned, byRange, prefix, startAfter, limit+1); err != nil {
		return nil, false, err
	}
	var all []catalog.KeyValue
	for _, kvs := range byRange {
		all = append(all, kvs...)
	}
	all, more := command.MergePages(all, limit)
	return all, more, nil
}

// scanSplitSince completes a scan of the ranges scanned, whose pages are
// in byRange, with the ranges that splits of them made since this node's
// catalog named them. A replica that has a split in its catalog answers
// for the old range with its new, narrower span only (split.go), and it
// has the split only once meta committed it: so the scan catches this
// node's catalog up with meta (the catalog barrier; if meta cannot
// answer, it goes on with the catalog it has), then keeps of each range
// that split only the keys of its span now, and scans the ranges split
// from it.
func (c *Coordinator) scanSplitSince(ctx context.Context, ks catalog.KeyspaceDescriptor, scanned []*catalog.RangeDescriptor,
	byRange map[uint64][]catalog.KeyValue, prefix, startAfter []byte, limit int) error {
	if c.catchUpCatalog != nil {
		if err := c.catchUpCatalog(ctx, "a scan of keyspace "+ks.Name); err != nil {
			// Meta is unavailable, so nothing splits now: the scan goes on
			// with the catalog as it is, needing its replicas alone.
			c.store.Logger.Debug("a scan could not catch up with meta's catalog", "keyspace", ks.Name, "err", err)
		}
	}
	v := c.splitView(c.store.Catalog(), ks.Name)
	for _, r := range scanned {
		now, ok := v.byID[r.ID]
		if !ok || now.Span == r.Span {
			continue
		}
		kept := byRange[r.ID][:0]
		for _, kv := range byRange[r.ID] {
			if now.Span.Contains(catalog.HashKey(kv.Key)) {
				kept = append(kept, kv)
			}
		}
		byRange[r.ID] = kept
		for _, d := range v.cat.Ranges[ks.Name] {
			if _, done := byRange[d.ID]; done || !catalog.Ancestor(v.byID, d, r.ID) {
				continue
			}
			kvs, err := c.scanEventualRange(ctx, ks, d, prefix, startAfter, limit)
			if err != nil {
				return err
			}
			byRange[d.ID] = kvs
		}
	}
	return nil
}

// scanEventualRange returns up to limit live keys of range r after
// startAfter. Each round merges one page of records from a read quorum of
// replicas; tombstones are hidden, so it pages on until it has limit live
// keys or the replicas have no more.
func (c *Coordinator) scanEventualRange(ctx context.Context, ks catalog.KeyspaceDescriptor, r *catalog.RangeDescriptor, prefix, startAfter []byte, limit int) ([]catalog.KeyValue, error) {
	qs, err := c.eventualQuorums(ks, r, catalog.QuorumOverride{})
	if err != nil {
		return nil, err
	}
	var out []catalog.KeyValue
	after := startAfter
	for len(out) < limit {
		merged, next, err := c.scanRecordsOnce(ctx, ks, r, qs, prefix, after, limit)
		if err != nil {
			return nil, err
		}
		for _, kr := range merged {
			if kr.Record.Exists() && len(out) < limit {
				out = append(out, catalog.KeyValue{Key: kr.Key, Value: kr.Record.Value, Version: FormatRecordVersion(kr.Record.Version)})
			}
		}
		if next == nil {
			break
		}
		after = next
	}
	return out, nil
}

// scanRecordsOnce reads one page of up to limit records after startAfter
// from a read quorum of r's replicas and merges them. A replica that
// filled its page may hold keys past its last one that the others
// returned, so the merge stops at the smallest last key of a full page,
// and next is that key (nil when no replica filled its page: the range is
// done).
func (c *Coordinator) scanRecordsOnce(ctx context.Context, ks catalog.KeyspaceDescriptor, r *catalog.RangeDescriptor, qs wrn.Quorums,
	prefix, startAfter []byte, limit int) (merged []records.KeyRecord, next []byte, err error) {
	op := &scanOp{n: c, ks: ks, r: r, tr: qs.NewRead(), limit: limit}
	req := ReplicaRequest{Kind: reqScan, RangeID: r.ID, prefix: prefix, after: startAfter, limit: limit}
	res, err := await(ctx, func(done func(error)) {
		op.done = done
		for _, rep := range r.Replicas {
			from := rep.NodeID
			c.net.Call(from, req, func(a ReplicaAnswer) { op.answer(from, a) })
		}
	}, op.progress)
	if err == nil {
		err = res
	}
	if err != nil {
		return nil, nil, err
	}
	op.mu.Lock()
	defer op.mu.Unlock()
	byKey := map[string]wrn.Record{}
	for _, page := range op.pages {
		for _, kr := range page {
			if op.next != nil && bytes.Compare(kr.Key, op.next) > 0 {
				break
			}
			byKey[string(kr.Key)] = wrn.Merge(byKey[string(kr.Key)], kr.Record)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(byKey)) {
		merged = append(merged, records.KeyRecord{Key: []byte(k), Record: byKey[k]})
	}
	return merged, op.next, nil
}

// scanOp collects the pages of one scanRecordsOnce until a read quorum
// of replicas answered; the later pages are dropped.
type scanOp struct {
	n     *Coordinator
	ks    catalog.KeyspaceDescriptor
	r     *catalog.RangeDescriptor
	limit int
	mu    sync.Mutex
	tr    *wrn.ReadTracker
	pages [][]records.KeyRecord
	next  []byte      // the smallest last key of a full page
	done  func(error) // nil once called
}

func (o *scanOp) answer(from uint64, a ReplicaAnswer) {
	o.mu.Lock()
	if o.done == nil {
		o.mu.Unlock()
		return // decided already
	}
	if a := o.n.readable(o.r, from, a); a.Err != nil {
		o.tr.Fail(from, a.Err.Error())
	} else {
		o.tr.Reply(from, wrn.Record{})
		o.pages = append(o.pages, a.Recs)
		if len(a.Recs) >= o.limit {
			if last := a.Recs[len(a.Recs)-1].Key; o.next == nil || bytes.Compare(last, o.next) < 0 {
				o.next = last
			}
		}
	}
	var err error
	switch o.tr.State() {
	case wrn.Pending:
		o.mu.Unlock()
		return
	case wrn.Failed:
		err = fmt.Errorf("%w: keyspace %s range %d scan: %w", store.ErrUnavailable, o.ks.Name, o.r.ID, o.tr.Err())
	}
	done := o.done
	o.done = nil
	o.mu.Unlock()
	done(err)
}

func (o *scanOp) progress() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return fmt.Sprintf("keyspace %s scan: %v", o.ks.Name, o.tr.Err())
}
