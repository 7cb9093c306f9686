package eventual

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/quorumkv/quorumkv/internal/stack"
	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/records"
	"github.com/quorumkv/quorumkv/kv/transport"
	"github.com/quorumkv/quorumkv/paxos"
	"github.com/quorumkv/quorumkv/wrn"
)

// The coordinator of eventual keyspaces talks to replicas through a
// ReplicaNet: it starts a request and is called back with the answer. Its
// operations (writeOp, readOp, casOp, the hint replay and anti-entropy
// exchanges) are written as state machines fed by those callbacks, never
// blocking, so that the same code runs on goroutines in kvd (goNet) and
// in the deterministic simulator, which delivers every answer from its
// single goroutine in an order its seed decides (kv/sim_eventual_test.go).

// ReplicaNet carries a coordinator's requests to the replicas of eventual
// ranges, this node's own included.
type ReplicaNet interface {
	// Call runs req on node to's replica and calls done exactly once with
	// the answer: within the replica timeout, or with an error. done never
	// runs inside call (on the caller's stack), so a caller may hold a
	// lock that done takes while it calls.
	Call(to uint64, req ReplicaRequest, done func(ReplicaAnswer))
	// After calls f once d has passed (compare-and-swap backoff).
	After(d time.Duration, f func())
}

// ReplicaRequest is one request to a replica of eventual range RangeID.
// The kind says which of the other fields mean something.
type ReplicaRequest struct {
	Kind    replicaRequestKind
	RangeID uint64
	Key     []byte
	Rec     wrn.Record         // reqWrite
	Lazy    bool               // reqWrite: answer before the WAL syncs; the answer does not count toward W (writeOp)
	Cas     paxos.BasicMessage // reqCAS
	depth   int                // reqLeaves, reqLeafRecords: the Merkle tree's depth
	Leaves  []uint32           // reqLeafRecords
	limit   int                // reqLeafRecords, reqScan, ReqAcceptors: the most to answer
	prefix  []byte             // reqScan: of the keys
	after   []byte             // reqScan, ReqAcceptors: the keys after this one
	Node    uint64             // ReqLetGo: the node whose replica leaves
}

type replicaRequestKind uint8

const (
	ReqWrite replicaRequestKind = iota + 1
	ReqRead
	ReqCAS
	reqLeaves
	ReqLeafRecords
	reqScan
	// ReqLetGo asks whether range RangeID has let node Node's leaving
	// replica go (Coordinator.LetGo); it serves raft ranges too.
	ReqLetGo
	// ReqFilled asks whether the replica of range RangeID filled
	// (Coordinator.Filled).
	ReqFilled
	// ReqAcceptors asks for a page of the range's compare-and-swap
	// acceptor states (Coordinator.LocalAcceptors).
	ReqAcceptors
)

func (k replicaRequestKind) String() string {
	switch k {
	case ReqWrite:
		return "write"
	case ReqRead:
		return "read"
	case ReqCAS:
		return "cas"
	case reqLeaves:
		return "merkle-leaves"
	case ReqLeafRecords:
		return "leaf-records"
	case reqScan:
		return "scan"
	case ReqLetGo:
		return "let-go"
	case ReqFilled:
		return "filled"
	case ReqAcceptors:
		return "acceptors"
	}
	return fmt.Sprintf("request(%d)", uint8(k))
}

// ReplicaAnswer answers a replicaRequest: err, or the fields of its kind.
type ReplicaAnswer struct {
	Err       error
	Existed   bool                  // reqWrite: the key held a live value before
	Rec       wrn.Record            // reqRead
	Cas       paxos.BasicMessage    // reqCAS: the acceptor's answer
	Hashes    []uint64              // reqLeaves
	Recs      []records.KeyRecord   // reqLeafRecords, reqScan
	truncated bool                  // reqLeafRecords: more records than limit
	LetGo     bool                  // ReqLetGo
	Filled    bool                  // ReqFilled
	Acceptors []records.KeyAcceptor // ReqAcceptors
}

// ServeReplica runs req on this node's replica: what the peer service's
// record handlers do for a remote coordinator.
func (c *Coordinator) ServeReplica(req ReplicaRequest) ReplicaAnswer {
	var a ReplicaAnswer
	switch req.Kind {
	case ReqWrite:
		_, a.Existed, a.Err = c.WriteLocalRecord(req.RangeID, req.Key, req.Rec, req.Lazy)
	case ReqRead:
		a.Rec, a.Err = c.ReadLocalRecord(req.RangeID, req.Key)
	case ReqCAS:
		a.Cas, a.Err = c.StepLocalCAS(req.RangeID, req.Key, req.Cas)
	case reqLeaves:
		a.Hashes, a.Err = c.LocalMerkleLeaves(req.RangeID, req.depth)
	case ReqLeafRecords:
		a.Recs, a.truncated, a.Err = c.LocalLeafRecords(req.RangeID, req.depth, req.Leaves, req.limit)
	case reqScan:
		a.Recs, a.Err = c.ScanLocalRecords(req.RangeID, req.prefix, req.after, req.limit)
	case ReqLetGo:
		a.LetGo = c.LetGo(req.RangeID, req.Node)
	case ReqFilled:
		a.Filled = c.Filled(req.RangeID)
	case ReqAcceptors:
		a.Acceptors, a.Err = c.LocalAcceptors(req.RangeID, req.after, req.limit)
	default:
		a.Err = fmt.Errorf("%w: replica request %v", catalog.ErrInvalidArgument, req.Kind)
	}
	if a.Err != nil {
		a.Err = &transport.ReplicaError{Code: transport.ConnectCode(a.Err), Err: a.Err}
	}
	return a
}

// callRemote runs req on node to's replica through the peer service.
func (c *Coordinator) callRemote(ctx context.Context, to uint64, req ReplicaRequest) ReplicaAnswer {
	var a ReplicaAnswer
	p := c.RecordPeers
	switch req.Kind {
	case ReqWrite:
		a.Existed, a.Err = p.WriteRecord(ctx, to, req.RangeID, req.Key, req.Rec, req.Lazy)
	case ReqRead:
		a.Rec, a.Err = p.ReadRecord(ctx, to, req.RangeID, req.Key)
	case ReqCAS:
		a.Cas, a.Err = p.CASStep(ctx, to, req.RangeID, req.Key, req.Cas)
	case reqLeaves:
		a.Hashes, a.Err = p.MerkleLeaves(ctx, to, req.RangeID, req.depth)
	case ReqLeafRecords:
		a.Recs, a.truncated, a.Err = p.LeafRecords(ctx, to, req.RangeID, req.depth, req.Leaves, req.limit)
	case reqScan:
		a.Recs, a.Err = p.ScanRecords(ctx, to, req.RangeID, req.prefix, req.after, req.limit)
	case ReqLetGo:
		a.LetGo, a.Err = p.LetGo(ctx, to, req.RangeID, req.Node)
	case ReqFilled:
		a.Filled, a.Err = p.Filled(ctx, to, req.RangeID)
	case ReqAcceptors:
		a.Acceptors, a.Err = p.Acceptors(ctx, to, req.RangeID, req.after, req.limit)
	default:
		a.Err = fmt.Errorf("%w: replica request %v", catalog.ErrInvalidArgument, req.Kind)
	}
	return a
}

// goNet is kvd's ReplicaNet: one goroutine per request, bounded by the
// replica timeout, counted in Node.inflight so that Close waits for it.
type goNet struct{ n *Coordinator }

func (g goNet) Call(to uint64, req ReplicaRequest, done func(ReplicaAnswer)) {
	n := g.n
	n.Inflight.Add(1)
	go func() {
		defer n.Inflight.Done()
		if to == n.store.NodeID() {
			stack.Grow() // a new goroutine, as deep down to Pebble as a request
			done(n.ServeReplica(req))
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), n.replicaTimeout)
		defer cancel()
		done(n.callRemote(ctx, to, req))
	}()
}

func (g goNet) After(d time.Duration, f func()) {
	n := g.n
	n.Inflight.Add(1)
	time.AfterFunc(d, func() {
		defer n.Inflight.Done()
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
// work (replica requests through the node's ReplicaNet) and returns. The
// simulator calls the steps from its own timers instead.
type backgroundLoops struct {
	mu     sync.Mutex
	closed bool
	stop   chan struct{}
	wg     sync.WaitGroup
}

// Every calls step every interval until close; after close it does
// nothing.
func (l *backgroundLoops) Every(interval time.Duration, step func()) {
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

// Close stops the loops and waits for their goroutines. It is idempotent.
func (l *backgroundLoops) Close() {
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
