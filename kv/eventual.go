package kv

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/quorumkv/quorumkv/quorum"
	"github.com/quorumkv/quorumkv/wrn"
)

// The coordinator of eventual keyspaces (DESIGN.md §5). Any node
// coordinates any key: a write goes to all N replicas of the key's range
// and is acknowledged after W durable acks; a read asks all N and answers
// after R replies with the newest record. The node's own replica is
// written and read directly, the others through recordTransport.

// QuorumOverride is a request's W and R for an eventual keyspace: a count,
// or a level (one, quorum, all, resolved against N by wrn.ResolveSize).
// Zero values keep the keyspace's defaults.
type QuorumOverride struct {
	W, R           int
	WLevel, RLevel string
}

// Defaults for the coordinator, used when NodeConfig leaves them zero.
const (
	// DefaultReplicaTimeout bounds one replica's answer to a coordinator.
	// Too low fails writes and reads on a slow disk; too high keeps a
	// request on a hung replica until the client's own deadline.
	DefaultReplicaTimeout = 2 * time.Second
	// DefaultMaxReadRepairs bounds read repairs in flight on a node (one
	// goroutine each), and separately the collectors of eventual reads'
	// late answers (staleness measure). Too low drops repairs under load (anti-entropy then
	// repairs later; dropped ones are counted); too high lets a burst of
	// stale reads hold that many goroutines and peer requests.
	DefaultMaxReadRepairs = 64
	// clockMaxOffset is the largest clock offset between nodes the HLC
	// tolerates (see wrn.NewClock).
	clockMaxOffset = 500 * time.Millisecond
)

// formatRecordVersion shows an eventual version: WALL.LOGICAL.NODE.
func formatRecordVersion(v wrn.Version) string {
	return strconv.FormatInt(v.Timestamp.WallTime, 10) + "." + strconv.FormatUint(uint64(v.Timestamp.Logical), 10) +
		"." + strconv.FormatUint(v.Node, 10)
}

// observeVersion moves the clock past a version seen in a read or write,
// so that a later write coordinated here orders after it. A version too
// far ahead (a peer's broken clock) is not followed; the record still
// counts, as last writer wins demands.
func (n *Node) observeVersion(v wrn.Version) {
	if v.IsZero() {
		return
	}
	if _, err := n.clock.Update(v.Timestamp); err != nil {
		n.store.logger.Warn("not following a version's clock", "version", v, "err", err)
	}
}

// eventualQuorums returns the write and read quorums of range r of
// eventual keyspace ks for a request overriding them with q.
func (n *Node) eventualQuorums(ks KeyspaceDescriptor, r *RangeDescriptor, q QuorumOverride) (wrn.Quorums, error) {
	ids := make([]uint64, len(r.Replicas))
	for i, rep := range r.Replicas {
		ids[i] = rep.NodeID
	}
	overridden := q != QuorumOverride{}
	if ks.W == 0 {
		// A geometry's write sets (phase 2) and read sets (phase 1).
		if overridden {
			return wrn.Quorums{}, fmt.Errorf("%w: keyspace %s: its %s geometry defines the write and read sets; w and r cannot override it",
				ErrInvalidArgument, ks.Name, ks.Quorum)
		}
		nodes := make([]quorum.Node, len(r.Replicas))
		for i, rep := range r.Replicas {
			nodes[i] = quorum.Node{ID: rep.NodeID, Zone: rep.Zone, Weight: rep.Weight}
		}
		sys, err := quorum.Parse(ks.Quorum, nodes)
		if err != nil {
			return wrn.Quorums{}, fmt.Errorf("%w: keyspace %s: %v", ErrInvalidArgument, ks.Name, err)
		}
		return wrn.GeometryQuorums(sys), nil
	}
	size := func(count int, level string, def int) (int, error) {
		if level != "" {
			return wrn.ResolveSize(level, len(ids))
		}
		return cmpOr(count, def), nil
	}
	w, err := size(q.W, q.WLevel, ks.W)
	if err != nil {
		return wrn.Quorums{}, fmt.Errorf("%w: keyspace %s: %w", ErrInvalidArgument, ks.Name, err)
	}
	rr, err := size(q.R, q.RLevel, ks.R)
	if err != nil {
		return wrn.Quorums{}, fmt.Errorf("%w: keyspace %s: %w", ErrInvalidArgument, ks.Name, err)
	}
	qs, err := wrn.SizeQuorums(ids, w, rr)
	if err != nil {
		return wrn.Quorums{}, fmt.Errorf("%w: keyspace %s: %w", ErrInvalidArgument, ks.Name, err)
	}
	return qs, nil
}

// writeEventual writes rec (a value or a tombstone, without a version)
// to every replica of r and returns once W of them stored it durably. The
// replicas that have not answered by then still get it: their sends run
// on, each bounded by the replica timeout, not by the request.
func (n *Node) writeEventual(ctx context.Context, ks KeyspaceDescriptor, r *RangeDescriptor, key []byte, rec wrn.Record,
	q QuorumOverride) (wrn.Version, bool, error) {
	qs, err := n.eventualQuorums(ks, r, q)
	if err != nil {
		return wrn.Version{}, false, err
	}
	ts, err := n.clock.Now()
	if err != nil {
		return wrn.Version{}, false, err
	}
	rec.Version = wrn.Version{Timestamp: ts, Node: n.store.NodeID()}
	existed, err := n.writeEventualRecord(ctx, ks, r, qs, key, rec)
	return rec.Version, existed, err
}

// writeEventualRecord is writeEventual of rec, versioned already, with
// the quorums qs.
func (n *Node) writeEventualRecord(ctx context.Context, ks KeyspaceDescriptor, r *RangeDescriptor, qs wrn.Quorums, key []byte,
	rec wrn.Record) (bool, error) {
	type ack struct {
		node    uint64
		existed bool
		err     error
		hinted  bool // err is set and a hint for node was stored
	}
	// One slot per replica: no sender ever blocks, so none outlives its
	// send even when the request has returned.
	acks := make(chan ack, len(r.Replicas))
	for _, rep := range r.Replicas {
		n.inflight.Add(1)
		go func(to uint64) {
			defer n.inflight.Done()
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), n.replicaTimeout)
			defer cancel()
			existed, err := n.sendRecord(sctx, to, r.ID, key, rec)
			hinted := err != nil && n.hintWrite(to, r.ID, key, rec)
			acks <- ack{to, existed, err, hinted}
		}(rep.NodeID)
	}
	tr := qs.NewWrite(ks.SloppyQuorum)
	existed := false
	// Until the write is decided; once it has failed, until every replica
	// answered (each within the replica timeout), so that the error counts
	// every replica that did store it.
	for got := 0; got < len(r.Replicas) && (tr.State() == wrn.Pending || tr.State() == wrn.Failed); got++ {
		select {
		case a := <-acks:
			if a.err != nil && a.hinted && ks.SloppyQuorum {
				tr.Hinted(a.node)
				continue
			}
			if a.err != nil {
				tr.Fail(a.node, a.err.Error())
				continue
			}
			existed = existed || a.existed
			tr.Ack(a.node)
		case <-ctx.Done():
			return false, fmt.Errorf("%w (keyspace %s: %v)", ctx.Err(), ks.Name, tr.Err())
		}
	}
	if tr.State() == wrn.Failed {
		return false, fmt.Errorf("%w: keyspace %s range %d: %w", ErrUnavailable, ks.Name, r.ID, tr.Err())
	}
	return existed, nil
}

// sendRecord writes rec on node to's replica: directly if it is this node.
func (n *Node) sendRecord(ctx context.Context, to, rangeID uint64, key []byte, rec wrn.Record) (bool, error) {
	if to == n.store.NodeID() {
		_, existed, err := n.writeLocalRecord(rangeID, key, rec)
		return existed, err
	}
	return n.recordPeers.writeRecord(ctx, to, rangeID, key, rec)
}

func (n *Node) fetchRecord(ctx context.Context, from, rangeID uint64, key []byte) (wrn.Record, error) {
	if from == n.store.NodeID() {
		return n.readLocalRecord(rangeID, key)
	}
	return n.recordPeers.readRecord(ctx, from, rangeID, key)
}

// readEventual asks every replica of r for key's record and returns the
// newest once R answered (the zero Record if none holds the key), then
// repairs the stale replicas among those that answered, in the
// background. The answers that come after the read returned are still
// collected in the background (bounded like read repair, see
// collectLateAnswers) to measure staleness and repair with the true newest.
func (n *Node) readEventual(ctx context.Context, ks KeyspaceDescriptor, r *RangeDescriptor, key []byte, q QuorumOverride) (wrn.Record, error) {
	qs, err := n.eventualQuorums(ks, r, q)
	if err != nil {
		return wrn.Record{}, err
	}
	// The replica requests outlive the read when their late answers are
	// collected: they run under rctx, cancelled when the read returns
	// unless the collector takes them over.
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	collecting := false
	defer func() {
		if !collecting {
			cancel()
		}
	}()
	replies := make(chan readReply, len(r.Replicas)) // one slot per replica: senders never block
	for _, rep := range r.Replicas {
		n.inflight.Add(1)
		go func(from uint64) {
			defer n.inflight.Done()
			sctx, cancel := context.WithTimeout(rctx, n.replicaTimeout)
			defer cancel()
			rec, err := n.fetchRecord(sctx, from, r.ID, key)
			replies <- readReply{from, rec, err}
		}(rep.NodeID)
	}
	tr := qs.NewRead()
	answers := map[uint64]wrn.Record{}
	got := 0
	// As for writes: a failed read waits for every answer, to count them.
	for ; got < len(r.Replicas) && (tr.State() == wrn.Pending || tr.State() == wrn.Failed); got++ {
		select {
		case rp := <-replies:
			if rp.err != nil {
				tr.Fail(rp.node, rp.err.Error())
				continue
			}
			tr.Reply(rp.node, rp.rec)
			answers[rp.node] = rp.rec
		case <-ctx.Done():
			return wrn.Record{}, fmt.Errorf("%w (keyspace %s: %v)", ctx.Err(), ks.Name, tr.Err())
		}
	}
	if tr.State() == wrn.Failed {
		return wrn.Record{}, fmt.Errorf("%w: keyspace %s range %d: %w", ErrUnavailable, ks.Name, r.ID, tr.Err())
	}
	res := tr.Result()
	n.observeVersion(res.Version)
	n.readRepair(r.ID, key, res, tr.Stale())
	n.store.cfg.Metrics.WRNReads.WithLabelValues(ks.Name).Inc()
	n.store.cfg.Metrics.WRNStaleReads.WithLabelValues(ks.Name).Add(0) // exported at 0 until a stale read
	if pending := len(r.Replicas) - got; pending > 0 {
		collecting = n.collectLateAnswers(ks.Name, r.ID, key, res, answers, replies, pending, cancel)
	}
	return res, nil
}

type readReply struct {
	node uint64
	rec  wrn.Record
	err  error
}

// collectLateAnswers waits, in the background, for the pending answers of
// a read that returned res, and counts the read as stale if any replica
// held a newer version than res: the staleness measure of issue 6
// (quorumkv_wrn_stale_reads_total over quorumkv_wrn_reads_total). Every
// replica that answered with something older than the newest of all
// answers is then repaired with it, the read's own answerers included.
//
// At most MaxReadRepairs collectors run on a node; without a free slot the
// late answers are abandoned and the read cannot be counted stale, so the
// measured rate is a lower bound under heavy load. It returns whether it
// took over cancel (called once every answer is in).
func (n *Node) collectLateAnswers(keyspace string, rangeID uint64, key []byte, res wrn.Record, answers map[uint64]wrn.Record,
	replies <-chan readReply, pending int, cancel context.CancelFunc) bool {
	select {
	case n.lateSlots <- struct{}{}:
	default:
		return false
	}
	n.inflight.Add(1)
	go func() {
		defer func() { <-n.lateSlots; n.inflight.Done() }()
		defer cancel()
		newest := res
		late := map[uint64]wrn.Record{}
		for range pending {
			rp := <-replies // each sender answers within the replica timeout
			if rp.err != nil {
				continue
			}
			late[rp.node] = rp.rec
			newest = wrn.Merge(newest, rp.rec)
		}
		if res.Version.Less(newest.Version) {
			n.store.cfg.Metrics.WRNStaleReads.WithLabelValues(keyspace).Inc()
			n.observeVersion(newest.Version)
			// The read's own answerers were repaired with res at most.
			maps.Copy(late, answers)
		}
		var stale []uint64
		for id, rec := range late {
			if rec.Version.Less(newest.Version) {
				stale = append(stale, id)
			}
		}
		slices.Sort(stale)
		n.readRepair(rangeID, key, newest, stale)
	}()
	return true
}

// readRepair writes the winner of a read back to the stale replicas the
// read saw, in the background: one goroutine per stale replica, at most
// maxRepairs in flight on the node; a repair that finds no free slot is
// dropped (and counted), left to a later read or to anti-entropy. Close
// waits for the repairs in flight.
func (n *Node) readRepair(rangeID uint64, key []byte, winner wrn.Record, stale []uint64) {
	repairs := n.store.cfg.Metrics.ReadRepairs
	for _, to := range stale {
		select {
		case n.repairSlots <- struct{}{}:
		default:
			repairs.WithLabelValues("dropped").Inc()
			continue
		}
		n.inflight.Add(1)
		go func() {
			defer func() { <-n.repairSlots; n.inflight.Done() }()
			ctx, cancel := context.WithTimeout(context.Background(), n.replicaTimeout)
			defer cancel()
			if _, err := n.sendRecord(ctx, to, rangeID, key, winner); err != nil {
				repairs.WithLabelValues("failed").Inc()
				n.store.logger.Debug("read repair failed", "range", rangeID, "node", to, "err", err)
				return
			}
			repairs.WithLabelValues("ok").Inc()
		}()
	}
}

// Close waits for the node's background work to finish: read repairs,
// and replica requests of eventual writes and reads that outlived their
// request (each bounded by the replica timeout); then it stops the hint
// replay and anti-entropy loops. Close the store after. It may be called
// more than once.
func (n *Node) Close() {
	n.inflight.Wait()
	n.hints.close()
	n.antiEntropy.close()
}

// lookup finds keyspace's descriptor and the range of key, whatever the
// keyspace's mode.
func (n *Node) lookup(keyspace string, key []byte) (KeyspaceDescriptor, *RangeDescriptor, error) {
	if err := n.limits.CheckKey(key); err != nil {
		return KeyspaceDescriptor{}, nil, err
	}
	cat := n.store.Catalog()
	ks, ok := cat.Keyspaces[keyspace]
	if !ok {
		if err := CheckKeyspaceName(keyspace); err != nil {
			return KeyspaceDescriptor{}, nil, err
		}
		return KeyspaceDescriptor{}, nil, fmt.Errorf("%w: %q (kvctl keyspace list shows them)", ErrNoKeyspace, keyspace)
	}
	spans := cat.Spans[keyspace]
	return ks, cat.Ranges[keyspace][SpanIndex(spans, HashKey(key))], nil
}

// scanEventual scans an eventual keyspace: per range, the records of at
// least R replicas merged (newest wins), tombstones hidden.
func (n *Node) scanEventual(ctx context.Context, ks KeyspaceDescriptor, prefix, startAfter []byte, limit int) ([]KeyValue, bool, error) {
	var all []KeyValue
	for _, r := range n.store.Catalog().Ranges[ks.Name] {
		kvs, err := n.scanEventualRange(ctx, ks, r, prefix, startAfter, limit+1)
		if err != nil {
			return nil, false, err
		}
		all = append(all, kvs...)
	}
	all, more := mergePages(all, limit)
	return all, more, nil
}

// scanEventualRange returns up to limit live keys of range r after
// startAfter. Each round merges one page of records from a read quorum of
// replicas; tombstones are hidden, so it pages on until it has limit live
// keys or the replicas have no more.
func (n *Node) scanEventualRange(ctx context.Context, ks KeyspaceDescriptor, r *RangeDescriptor, prefix, startAfter []byte, limit int) ([]KeyValue, error) {
	qs, err := n.eventualQuorums(ks, r, QuorumOverride{})
	if err != nil {
		return nil, err
	}
	var out []KeyValue
	after := startAfter
	for len(out) < limit {
		merged, next, err := n.scanRecordsOnce(ctx, ks, r, qs, prefix, after, limit)
		if err != nil {
			return nil, err
		}
		for _, kr := range merged {
			if kr.Record.Exists() && len(out) < limit {
				out = append(out, KeyValue{Key: kr.Key, Value: kr.Record.Value, Version: formatRecordVersion(kr.Record.Version)})
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
func (n *Node) scanRecordsOnce(ctx context.Context, ks KeyspaceDescriptor, r *RangeDescriptor, qs wrn.Quorums,
	prefix, startAfter []byte, limit int) (merged []keyRecord, next []byte, err error) {
	type reply struct {
		node uint64
		recs []keyRecord
		err  error
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	replies := make(chan reply, len(r.Replicas)) // one slot per replica: senders never block
	for _, rep := range r.Replicas {
		n.inflight.Add(1)
		go func(from uint64) {
			defer n.inflight.Done()
			sctx, cancel := context.WithTimeout(rctx, n.replicaTimeout)
			defer cancel()
			var recs []keyRecord
			var err error
			if from == n.store.NodeID() {
				recs, err = n.scanLocalRecords(r.ID, prefix, startAfter, limit)
			} else {
				recs, err = n.recordPeers.scanRecords(sctx, from, r.ID, prefix, startAfter, limit)
			}
			replies <- reply{from, recs, err}
		}(rep.NodeID)
	}
	tr := qs.NewRead()
	var pages [][]keyRecord
	for tr.State() == wrn.Pending {
		select {
		case rp := <-replies:
			if rp.err != nil {
				tr.Fail(rp.node, rp.err.Error())
				continue
			}
			tr.Reply(rp.node, wrn.Record{})
			pages = append(pages, rp.recs)
			if len(rp.recs) >= limit {
				if last := rp.recs[len(rp.recs)-1].Key; next == nil || bytes.Compare(last, next) < 0 {
					next = last
				}
			}
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("%w (keyspace %s scan: %v)", ctx.Err(), ks.Name, tr.Err())
		}
	}
	if tr.State() == wrn.Failed {
		return nil, nil, fmt.Errorf("%w: keyspace %s range %d scan: %w", ErrUnavailable, ks.Name, r.ID, tr.Err())
	}
	byKey := map[string]wrn.Record{}
	for _, page := range pages {
		for _, kr := range page {
			if next != nil && bytes.Compare(kr.Key, next) > 0 {
				break
			}
			byKey[string(kr.Key)] = wrn.Merge(byKey[string(kr.Key)], kr.Record)
		}
	}
	for _, k := range sortedKeys(byKey) {
		merged = append(merged, keyRecord{Key: []byte(k), Record: byKey[k]})
	}
	return merged, next, nil
}
