package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	peerv1 "github.com/quorumkv/quorumkv/api/quorumkv/peer/v1"
	"github.com/quorumkv/quorumkv/api/quorumkv/peer/v1/peerv1connect"
	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/store"
)

// The hot path of eventual keyspaces, a coordinator's record writes and
// reads and its compare-and-swap steps, travels on one long-lived
// Peer.Records stream per pair of nodes, many calls per message, as
// consensus messages do on Peer.Raft (DESIGN.md §7). A unary RPC per call
// cost a request's headers, frames and flushes on both sides each time;
// a stream sends whatever calls are waiting in one message and one write.
//
// Answers come back in any order, matched to their calls by id: the
// replica runs each call on its own goroutine, so a write waiting for its
// sync does not hold up a read behind it.

// maxRecordCalls bounds one peer's calls waiting to be sent. Beyond it a
// call fails at once with ResourceExhausted: the coordinator treats it as
// a replica that did not answer (a hint, for a write).
const maxRecordCalls = 8192

// MaxRecordBatch bounds the calls (or answers) in one stream message, and
// MaxBatchBytes their bytes (one call or answer always goes, however
// big): a batch of large values stays well under the peer message limit
// (kv's peerMaxBytes).
const (
	MaxRecordBatch = 256
	MaxBatchBytes  = 8 << 20
)

// ErrNoRecordsStream: the peer does not serve Peer.Records (an older
// kvd). The call was not run; make it through the unary RPC instead.
var ErrNoRecordsStream = errors.New("peer does not serve the Records stream")

// RecordStreams holds a node's Records streams to other nodes.
type RecordStreams struct {
	peers  *Peers
	ctx    context.Context // ends with close
	cancel context.CancelFunc
	mu     struct {
		sync.Mutex
		byNode map[uint64]*recordStream
	}
	wg sync.WaitGroup
}

func NewRecordStreams(p *Peers) *RecordStreams {
	rs := &RecordStreams{peers: p}
	rs.ctx, rs.cancel = context.WithCancel(context.Background())
	rs.mu.byNode = map[uint64]*recordStream{}
	return rs
}

// Close ends every stream and fails the calls waiting on them.
func (rs *RecordStreams) Close() {
	rs.cancel()
	rs.wg.Wait()
}

// recordStream is the stream to one node, at one address. Its goroutine
// (run) opens the stream when there are calls to send and reopens it
// after a failure.
type recordStream struct {
	to     uint64
	addr   string
	client peerv1connect.PeerClient
	ctx    context.Context // ends when the stream is replaced or closed
	cancel context.CancelFunc
	wake   chan struct{} // capacity 1: calls are queued
	mu     struct {
		sync.Mutex
		queue   []*peerv1.RecordCall
		pending map[uint64]chan<- recordResult
		nextID  uint64
		// unary is set once the peer answered Unimplemented: every
		// call goes through the unary RPCs from then on.
		unary bool
	}
}

// NotSentError is the failure of a call that was never sent: the peer
// did not run it.
type NotSentError struct{ Err error }

func (e *NotSentError) Error() string { return e.Err.Error() }
func (e *NotSentError) Unwrap() error { return e.Err }

type recordResult struct {
	ans *peerv1.RecordAnswer
	err error
}

// stream returns the stream to node to at addr, starting it if needed.
// A node that moved to another address gets a new stream; the old one's
// calls fail.
func (rs *RecordStreams) stream(to uint64, addr string) (*recordStream, error) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if err := rs.ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: node is closing", store.ErrUnavailable)
	}
	if s, ok := rs.mu.byNode[to]; ok {
		if s.addr == addr {
			return s, nil
		}
		s.cancel()
	}
	s := &recordStream{to: to, addr: addr, client: rs.peers.PeerClient(addr), wake: make(chan struct{}, 1)}
	s.ctx, s.cancel = context.WithCancel(rs.ctx)
	s.mu.pending = map[uint64]chan<- recordResult{}
	rs.mu.byNode[to] = s
	rs.wg.Go(s.run)
	return s, nil
}

// Call sends c to node to at addr and returns its answer, or an error:
// the stream failed, ctx ended first, or errNoRecordsStream.
func (rs *RecordStreams) Call(ctx context.Context, to uint64, addr string, c *peerv1.RecordCall) (*peerv1.RecordAnswer, error) {
	s, err := rs.stream(to, addr)
	if err != nil {
		return nil, &NotSentError{err}
	}
	ch := make(chan recordResult, 1)
	s.mu.Lock()
	switch {
	case s.mu.unary:
		s.mu.Unlock()
		return nil, ErrNoRecordsStream
	case s.ctx.Err() != nil:
		// Replaced or closed since stream returned it: its goroutine
		// is gone and would never send the call.
		s.mu.Unlock()
		return nil, &NotSentError{fmt.Errorf("%w: the stream to node %d closed", store.ErrUnavailable, to)}
	case len(s.mu.queue) >= maxRecordCalls:
		s.mu.Unlock()
		return nil, &NotSentError{fmt.Errorf("%w: %d calls already wait for node %d (the limit)", catalog.ErrLimit, maxRecordCalls, to)}
	}
	s.mu.nextID++
	id := s.mu.nextID
	c.Id = id
	s.mu.pending[id] = ch
	s.mu.queue = append(s.mu.queue, c)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	select {
	case r := <-ch:
		return r.ans, r.err
	case <-ctx.Done():
		s.mu.Lock()
		delete(s.mu.pending, id) // its answer, if one comes, is dropped
		s.mu.Unlock()
		return nil, fmt.Errorf("node %d did not answer: %w", to, ctx.Err())
	}
}

func (s *recordStream) run() {
	for {
		select {
		case <-s.ctx.Done():
			s.fail(fmt.Errorf("%w: the stream to node %d closed", store.ErrUnavailable, s.to))
			return
		case <-s.wake:
		}
		err := s.session()
		if connect.CodeOf(err) == connect.CodeUnimplemented {
			s.mu.Lock()
			s.mu.unary = true
			s.mu.Unlock()
			s.fail(ErrNoRecordsStream) // not run by the peer: safe to make again
			return
		}
		s.fail(fmt.Errorf("%w: the stream to node %d failed: %v", store.ErrUnavailable, s.to, err))
	}
}

// take removes up to maxRecordBatch queued calls.
func (s *recordStream) take() []*peerv1.RecordCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, size := 0, 0
	for n < min(len(s.mu.queue), MaxRecordBatch) {
		if size += proto.Size(s.mu.queue[n]); n > 0 && size > MaxBatchBytes {
			break
		}
		n++
	}
	if n == 0 {
		return nil
	}
	batch := s.mu.queue[:n:n]
	s.mu.queue = s.mu.queue[n:]
	if len(s.mu.queue) == 0 {
		s.mu.queue = nil
	}
	return batch
}

// fail ends every call queued or sent with err.
func (s *recordStream) fail(err error) {
	s.mu.Lock()
	pending := s.mu.pending
	s.mu.pending = map[uint64]chan<- recordResult{}
	s.mu.queue = nil
	s.mu.Unlock()
	for _, ch := range pending {
		ch <- recordResult{err: err}
	}
}

// session opens the stream and sends queued calls until it fails or the
// stream is closed; it returns why it ended (never nil).
func (s *recordStream) session() error {
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	bs := s.client.Records(ctx)
	received := make(chan error, 1)
	go func() { received <- s.receive(bs) }()
	var err error
	for err == nil {
		batch := s.take()
		if len(batch) == 0 {
			select {
			case <-s.wake:
			case err = <-received:
				received = nil
			case <-ctx.Done():
				err = ctx.Err()
			}
			continue
		}
		if serr := bs.Send(&peerv1.RecordsRequest{Calls: batch}); serr != nil {
			// Send says io.EOF when the peer ended the stream; why it
			// did is on the receiving side.
			select {
			case err = <-received:
				received = nil
			case <-time.After(time.Second):
				err = serr
			}
		}
	}
	// HTTP/2's client notices the canceled context only once the
	// request body ends: close it, or the receiver never returns.
	cancel()
	bs.CloseRequest()
	if received != nil {
		<-received
	}
	bs.CloseResponse()
	return err
}

// receive delivers answers until the stream fails.
func (s *recordStream) receive(bs *connect.BidiStreamForClient[peerv1.RecordsRequest, peerv1.RecordsResponse]) error {
	for {
		msg, err := bs.Receive()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("node %d ended the stream", s.to)
			}
			return err
		}
		s.mu.Lock()
		for _, a := range msg.Answers {
			if ch, ok := s.mu.pending[a.Id]; ok {
				delete(s.mu.pending, a.Id)
				ch <- recordResult{ans: a}
			}
		}
		s.mu.Unlock()
	}
}
