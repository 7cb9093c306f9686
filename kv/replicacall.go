package kv

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/quorumkv/quorumkv/kv/transport"

	"github.com/quorumkv/quorumkv/kv/records"

	"github.com/quorumkv/quorumkv/kv/catalog"

	"connectrpc.com/connect"

	"github.com/quorumkv/quorumkv/paxos"
	"github.com/quorumkv/quorumkv/wrn"
)

// The coordinator of eventual keyspaces talks to replicas through a
// replicaNet: it starts a request and is called back with the answer. Its
// operations (writeOp, readOp, casOp, the hint replay and anti-entropy
// exchanges) are written as state machines fed by those callbacks, never
// blocking, so that the same code runs on goroutines in kvd (goNet) and
// in the deterministic simulator, which delivers every answer from its
// single goroutine in an order its seed decides (sim_eventual_test.go).

// replicaNet carries a coordinator's requests to the replicas of eventual
// ranges, this node's own included.
type replicaNet interface {
	// call runs req on node to's replica and calls done exactly once with
	// the answer: within the replica timeout, or with an error. done never
	// runs inside call (on the caller's stack), so a caller may hold a
	// lock that done takes while it calls.
	call(to uint64, req replicaRequest, done func(replicaAnswer))
	// after calls f once d has passed (compare-and-swap backoff).
	after(d time.Duration, f func())
}

// replicaRequest is one request to a replica of eventual range RangeID.
// The kind says which of the other fields mean something.
type replicaRequest struct {
	kind    replicaRequestKind
	rangeID uint64
	key     []byte
	rec     wrn.Record         // reqWrite
	cas     paxos.BasicMessage // reqCAS
	depth   int                // reqLeaves, reqLeafRecords: the Merkle tree's depth
	leaves  []uint32           // reqLeafRecords
	limit   int                // reqLeafRecords, reqScan: the most records to answer
	prefix  []byte             // reqScan: of the keys
	after   []byte             // reqScan: the keys after this one
}

type replicaRequestKind uint8

const (
	reqWrite replicaRequestKind = iota + 1
	reqRead
	reqCAS
	reqLeaves
	reqLeafRecords
	reqScan
)

func (k replicaRequestKind) String() string {
	switch k {
	case reqWrite:
		return "write"
	case reqRead:
		return "read"
	case reqCAS:
		return "cas"
	case reqLeaves:
		return "merkle-leaves"
	case reqLeafRecords:
		return "leaf-records"
	case reqScan:
		return "scan"
	}
	return fmt.Sprintf("request(%d)", uint8(k))
}

// replicaAnswer answers a replicaRequest: err, or the fields of its kind.
type replicaAnswer struct {
	err       error
	existed   bool                // reqWrite: the key held a live value before
	rec       wrn.Record          // reqRead
	cas       paxos.BasicMessage  // reqCAS: the acceptor's answer
	hashes    []uint64            // reqLeaves
	recs      []records.KeyRecord // reqLeafRecords, reqScan
	truncated bool                // reqLeafRecords: more records than limit
}

// serveReplica runs req on this node's replica: what the peer service's
// record handlers do for a remote coordinator.
func (c *Coordinator) serveReplica(req replicaRequest) replicaAnswer {
	var a replicaAnswer
	switch req.kind {
	case reqWrite:
		_, a.existed, a.err = c.writeLocalRecord(req.rangeID, req.key, req.rec)
	case reqRead:
		a.rec, a.err = c.readLocalRecord(req.rangeID, req.key)
	case reqCAS:
		a.cas, a.err = c.stepLocalCAS(req.rangeID, req.key, req.cas)
	case reqLeaves:
		a.hashes, a.err = c.localMerkleLeaves(req.rangeID, req.depth)
	case reqLeafRecords:
		a.recs, a.truncated, a.err = c.localLeafRecords(req.rangeID, req.depth, req.leaves, req.limit)
	case reqScan:
		a.recs, a.err = c.scanLocalRecords(req.rangeID, req.prefix, req.after, req.limit)
	default:
		a.err = fmt.Errorf("%w: replica request %v", catalog.ErrInvalidArgument, req.kind)
	}
	if a.err != nil {
		a.err = &replicaError{code: transport.ConnectCode(a.err), err: a.err}
	}
	return a
}

// replicaError is an error that a replica's handler answered a call with:
// the call reached the replica, which refused it or failed there. Any
// other error of a call (no answer in time, a broken stream) leaves open
// whether the replica ran it.
type replicaError struct {
	code connect.Code
	err  error
}

func (e *replicaError) Error() string { return e.err.Error() }
func (e *replicaError) Unwrap() error { return e.err }

// notSent marks err, the failure of a call that was never sent, as
// definite as a replica's refusal.
func notSent(err error) error { return &replicaError{code: transport.ConnectCode(err), err: err} }

// refused says whether err is a replica's definite refusal: its handler
// answered an error before it stored anything (a limit, a range it does
// not hold, a version ahead of its clock), so a write it refused was not
// written there. A failure inside the handler (Internal: its disk) and an
// error of the call itself leave the outcome unknown.
func refused(err error) bool {
	var re *replicaError
	if !errors.As(err, &re) {
		return false
	}
	switch re.code {
	case connect.CodeInternal, connect.CodeUnknown, connect.CodeDataLoss, connect.CodeDeadlineExceeded, connect.CodeCanceled:
		return false
	}
	return true
}

// callRemote runs req on node to's replica through the peer service.
func (c *Coordinator) callRemote(ctx context.Context, to uint64, req replicaRequest) replicaAnswer {
	var a replicaAnswer
	p := c.recordPeers
	switch req.kind {
	case reqWrite:
		a.existed, a.err = p.writeRecord(ctx, to, req.rangeID, req.key, req.rec)
	case reqRead:
		a.rec, a.err = p.readRecord(ctx, to, req.rangeID, req.key)
	case reqCAS:
		a.cas, a.err = p.casStep(ctx, to, req.rangeID, req.key, req.cas)
	case reqLeaves:
		a.hashes, a.err = p.merkleLeaves(ctx, to, req.rangeID, req.depth)
	case reqLeafRecords:
		a.recs, a.truncated, a.err = p.leafRecords(ctx, to, req.rangeID, req.depth, req.leaves, req.limit)
	case reqScan:
		a.recs, a.err = p.scanRecords(ctx, to, req.rangeID, req.prefix, req.after, req.limit)
	default:
		a.err = fmt.Errorf("%w: replica request %v", catalog.ErrInvalidArgument, req.kind)
	}
	return a
}

// goNet is kvd's replicaNet: one goroutine per request, bounded by the
// replica timeout, counted in Node.inflight so that Close waits for it.
type goNet struct{ n *Coordinator }

func (g goNet) call(to uint64, req replicaRequest, done func(replicaAnswer)) {
	n := g.n
	n.inflight.Add(1)
	go func() {
		defer n.inflight.Done()
		if to == n.store.NodeID() {
			done(n.serveReplica(req))
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), n.replicaTimeout)
		defer cancel()
		done(n.callRemote(ctx, to, req))
	}()
}

func (g goNet) after(d time.Duration, f func()) {
	n := g.n
	n.inflight.Add(1)
	time.AfterFunc(d, func() {
		defer n.inflight.Done()
		f()
	})
}

// await starts an operation that reports to done, and waits for its
// result or for ctx to end; then it returns ctx's error with what
// progress says of the operation, which goes on in the background.
func await[T any](ctx context.Context, start func(done func(T)), progress func() string) (T, error) {
	ch := make(chan T, 1)
	start(func(v T) { ch <- v })
	select {
	case v := <-ch:
		return v, nil
	case <-ctx.Done():
		var zero T
		return zero, fmt.Errorf("%w (%s)", ctx.Err(), progress())
	}
}

// backgroundLoops runs a node's periodic work, hint replay and
// anti-entropy, each on its own ticker goroutine. Each step only starts
// work (replica requests through the node's replicaNet) and returns. The
// simulator calls the steps from its own timers instead.
type backgroundLoops struct {
	mu     sync.Mutex
	closed bool
	stop   chan struct{}
	wg     sync.WaitGroup
}

// every calls step every interval until close; after close it does
// nothing.
func (l *backgroundLoops) every(interval time.Duration, step func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	if l.stop == nil {
		l.stop = make(chan struct{})
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-t.C:
				step()
			}
		}
	}()
}

// stopped says whether close was called: work under way then ends at its
// next step instead of starting another request.
func (l *backgroundLoops) stopped() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// close stops the loops and waits for their goroutines. It is idempotent.
func (l *backgroundLoops) close() {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		if l.stop != nil {
			close(l.stop)
		}
	}
	l.mu.Unlock()
	l.wg.Wait()
}
