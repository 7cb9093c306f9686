package transport

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	peerv1 "github.com/quorumkv/quorumkv/api/quorumkv/peer/v1"
	"github.com/quorumkv/quorumkv/api/quorumkv/peer/v1/peerv1connect"
	"github.com/quorumkv/quorumkv/kv/consensus"
)

// PeerTransport sends consensus messages (Raft and Multi-Paxos) to other nodes: one long-lived
// client stream per peer, carrying batches of messages of every range the
// two nodes share (DESIGN.md §7). Each peer has a bounded queue and one
// goroutine; the store never waits for the network.
type PeerTransport struct {
	self      uint64
	selfAddr  string
	clusterID string
	// resolve returns a node's address from the catalog.
	resolve func(nodeID uint64) (string, bool)
	client  *http.Client
	logger  *slog.Logger
	// unreachable, if set, hears of messages to a peer that were dropped
	// (OnUnreachable).
	unreachable func(rangeID, to uint64)

	mu struct {
		sync.Mutex
		peers  map[uint64]*peerQueue
		closed bool
		// learned are addresses senders gave, for nodes the catalog does
		// not know yet (a new node hears from meta's leader first).
		learned map[uint64]string
	}
	wg sync.WaitGroup
	// ctx is cancelled by Close: it ends the calls under way
	// (FetchSnapshotChunk).
	ctx    context.Context
	cancel context.CancelFunc
}

// peerQueueSize bounds the messages waiting for one peer. A full queue
// drops messages, as a lossy network would; both protocols resend.
const peerQueueSize = 4096

// maxBatch bounds the messages in one stream send, and MaxBatchBytes
// their bytes (one message always goes, however big).
const maxBatch = 512

type outbound struct {
	rangeID uint64
	msg     []byte
}

type peerQueue struct {
	id   uint64
	ch   chan outbound
	stop chan struct{}
}

// NewPeerTransport returns a transport for node self, reachable at
// selfAddr, of the cluster.
func NewPeerTransport(self uint64, selfAddr, clusterID string, resolve func(uint64) (string, bool), client *http.Client, logger *slog.Logger) *PeerTransport {
	t := &PeerTransport{self: self, selfAddr: selfAddr, clusterID: clusterID, resolve: resolve, client: client, logger: logger}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.mu.peers = map[uint64]*peerQueue{}
	t.mu.learned = map[uint64]string{}
	return t
}

// OnUnreachable makes the transport report the messages it drops (a full
// peer queue, a failed stream): f gets each range once per failure, from
// the transport's goroutines, and must not block. Call it before the
// first Send. Store.ReportUnreachable is such an f.
func (t *PeerTransport) OnUnreachable(f func(rangeID, to uint64)) { t.unreachable = f }

// dropped reports lost messages of ranges to peer to.
func (t *PeerTransport) dropped(to uint64, rangeIDs ...uint64) {
	if t.unreachable == nil {
		return
	}
	seen := make(map[uint64]bool, len(rangeIDs))
	for _, id := range rangeIDs {
		if !seen[id] {
			seen[id] = true
			t.unreachable(id, to)
		}
	}
}

// Learn records the address a peer sent its messages from.
func (t *PeerTransport) Learn(id uint64, addr string) {
	if addr == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.mu.learned[id] = addr
}

func (t *PeerTransport) addr(id uint64) (string, bool) {
	if a, ok := t.resolve(id); ok {
		return a, true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	a, ok := t.mu.learned[id]
	return a, ok
}

// Send implements Transport. It never blocks.
func (t *PeerTransport) Send(rangeID uint64, m consensus.PeerMessage) {
	q := t.peer(m.To())
	if q == nil {
		return
	}
	select {
	case q.ch <- outbound{rangeID, consensus.EncodePeerMessage(m)}:
	default:
		t.logger.Debug("peer queue full: message dropped", "peer", m.To(), "range", rangeID, "type", m.Kind())
		t.dropped(m.To(), rangeID)
	}
}

func (t *PeerTransport) peer(id uint64) *peerQueue {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mu.closed {
		return nil
	}
	q, ok := t.mu.peers[id]
	if !ok {
		q = &peerQueue{id: id, ch: make(chan outbound, peerQueueSize), stop: make(chan struct{})}
		t.mu.peers[id] = q
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			t.run(q)
		}()
	}
	return q
}

// Close stops every peer's goroutine and waits for them.
func (t *PeerTransport) Close() {
	t.mu.Lock()
	t.mu.closed = true
	for _, q := range t.mu.peers {
		close(q.stop)
	}
	t.mu.Unlock()
	t.cancel()
	t.wg.Wait()
}

// run keeps a stream to the peer open and feeds it batches. When the
// stream fails, the batch in hand is dropped (Raft resends) and the
// stream is reopened after a backoff.
func (t *PeerTransport) run(q *peerQueue) {
	backoff := 50 * time.Millisecond
	for {
		err := t.stream(q)
		select {
		case <-q.stop:
			return
		case <-time.After(backoff):
		}
		if err != nil {
			t.logger.Debug("peer stream failed", "peer", q.id, "err", err)
			backoff = min(2*backoff, 2*time.Second)
		} else {
			backoff = 50 * time.Millisecond
		}
	}
}

func (t *PeerTransport) stream(q *peerQueue) error {
	// Wait for something to send before dialing: idle peers hold nothing.
	var first outbound
	select {
	case first = <-q.ch:
	case <-q.stop:
		return nil
	}
	addr, ok := t.addr(q.id)
	if !ok {
		t.dropped(q.id, first.rangeID)
		return errUnknownPeer
	}
	base := addr
	if !strings.Contains(addr, "://") {
		base = "http://" + addr
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-q.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	client := peerv1connect.NewPeerClient(t.client, base, connect.WithGRPC())
	stream := client.Raft(ctx)
	pending := []outbound{first}
	for {
		batch := &peerv1.RaftRequest{FromNode: t.self, ToNode: q.id, ClusterId: t.clusterID, FromAddress: t.selfAddr}
		for _, o := range pending {
			batch.Messages = append(batch.Messages, &peerv1.RaftMessage{RangeId: o.rangeID, Message: o.msg})
		}
		size := 0
		for _, o := range pending {
			size += len(o.msg)
		}
	more:
		for len(batch.Messages) < maxBatch && size < MaxBatchBytes {
			select {
			case o := <-q.ch:
				batch.Messages = append(batch.Messages, &peerv1.RaftMessage{RangeId: o.rangeID, Message: o.msg})
				size += len(o.msg)
			default:
				break more
			}
		}
		if err := stream.Send(batch); err != nil {
			ids := make([]uint64, len(batch.Messages))
			for i, m := range batch.Messages {
				ids[i] = m.RangeId
			}
			t.dropped(q.id, ids...)
			_, cerr := stream.CloseAndReceive()
			if cerr != nil {
				return cerr
			}
			return err
		}
		select {
		case o := <-q.ch:
			pending = []outbound{o}
		case <-q.stop:
			stream.CloseAndReceive()
			return nil
		}
	}
}

var errUnknownPeer = connect.NewError(connect.CodeUnavailable, errorString("peer address unknown"))

type errorString string

func (e errorString) Error() string { return string(e) }
