package kv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	peerv1 "github.com/quorumkv/quorumkv/api/quorumkv/peer/v1"
	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/internal/kvtest"
	"github.com/quorumkv/quorumkv/kv/store"
	"github.com/quorumkv/quorumkv/kv/transport"
	"github.com/quorumkv/quorumkv/storage"
	"github.com/quorumkv/quorumkv/wrn"
)

// servePeer serves n's HTTP surface over h2c, as kvd does, through wrap
// (which may refuse some routes), and counts the Records streams opened.
func servePeer(t *testing.T, n *Node, wrap func(http.Handler) http.Handler) (addr string, streams *atomic.Int64) {
	t.Helper()
	streams = new(atomic.Int64)
	mux := http.NewServeMux()
	mux.Handle(NewPeerService(n, connect.WithCompressMinBytes(8<<10)))
	var h http.Handler = mux
	if wrap != nil {
		h = wrap(h)
	}
	counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/Records") {
			streams.Add(1)
		}
		h.ServeHTTP(w, r)
	})
	srv := httptest.NewUnstartedServer(counted)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), streams
}

// openMemNode opens a one-node cluster on an in-memory database, both
// closed when the test ends.
func openMemNode(t *testing.T) *Node {
	t.Helper()
	db, err := storage.OpenMem(storage.Options{Logger: kvtest.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	n := openNode(t, db)
	t.Cleanup(func() { n.Store().Close() })
	return n
}

// servedElsewhere wraps a node's peer handler so that h serves its
// Records stream instead: a node without it (http.NotFound), or one of
// another version.
func servedElsewhere(h http.Handler) func(http.Handler) http.Handler {
	return func(node http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/Records") {
				h.ServeHTTP(w, r)
				return
			}
			node.ServeHTTP(w, r)
		})
	}
}

// recordStreamNode opens a one-node cluster with an eventual keyspace of
// one range, and returns the node and that range.
func recordStreamNode(t *testing.T) (*Node, uint64) {
	t.Helper()
	n := openMemNode(t)
	ctx := context.Background()
	if _, err := kvtest.Retry(t, func() (catalog.KeyspaceDescriptor, error) {
		return n.CreateKeyspace(ctx, catalog.KeyspaceDescriptor{Name: "ev", Mode: catalog.ModeEventual, Replicas: 1, Ranges: 1})
	}); err != nil {
		t.Fatal(err)
	}
	return n, n.Store().Catalog().Ranges["ev"][0].ID
}

func writeCall(rangeID uint64, key string, value string, wall int64) *peerv1.RecordCall {
	rec := wrn.Record{Version: wrn.Version{Timestamp: wrn.Timestamp{WallTime: wall}, Node: 7}, Value: []byte(value)}
	return &peerv1.RecordCall{Call: &peerv1.RecordCall_Write{Write: &peerv1.WriteRecordRequest{RangeId: rangeID, Key: []byte(key), Record: transport.RecordToProto(rec)}}}
}

func readCall(rangeID uint64, key string) *peerv1.RecordCall {
	return &peerv1.RecordCall{Call: &peerv1.RecordCall_Read{Read: &peerv1.ReadRecordRequest{RangeId: rangeID, Key: []byte(key)}}}
}

// Many callers at once share one stream; every answer reaches its own
// caller; a replica's failure comes back as the unary RPC's error.
func TestRecordStream(t *testing.T) {
	n, rangeID := recordStreamNode(t)
	addr, streams := servePeer(t, n, nil)
	rs := transport.NewRecordStreams(transport.NewPeers(transport.H2CClient()))
	defer rs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	wall := time.Now().UnixNano()
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Go(func() {
			key, value := fmt.Sprintf("k%03d", i), fmt.Sprintf("v%d", i)
			ans, err := rs.Call(ctx, 1, addr, writeCall(rangeID, key, value, wall+int64(i)))
			if err != nil || ans.GetWrite() == nil || !ans.GetWrite().Applied {
				errs <- fmt.Errorf("write %s: %v, %v", key, ans, err)
				return
			}
			ans, err = rs.Call(ctx, 1, addr, readCall(rangeID, key))
			if err != nil || ans.GetRead() == nil || string(ans.GetRead().Record.GetValue()) != value {
				errs <- fmt.Errorf("read %s: %v, %v", key, ans, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := streams.Load(); got != 1 {
		t.Errorf("%d Records streams opened for 400 calls, want 1", got)
	}
	// What a replica holds for a missing key: a read answer with no record.
	if ans, err := rs.Call(ctx, 1, addr, readCall(rangeID, "absent")); err != nil || ans.GetRead() == nil || ans.GetRead().Record != nil {
		t.Errorf("read of an absent key: %v, %v", ans, err)
	}

	// A range this node has no replica of: the stream's answer carries
	// the code and message the unary RPC fails with.
	ans, err := rs.Call(ctx, 1, addr, writeCall(rangeID+100, "k", "v", wall))
	if err != nil || ans.GetError() == nil {
		t.Fatalf("write to a missing range: %v, %v", ans, err)
	}
	_, unaryErr := transport.NewPeers(transport.H2CClient()).PeerClient(addr).WriteRecord(ctx, connect.NewRequest(writeCall(rangeID+100, "k", "v", wall).GetWrite()))
	if code := connect.CodeOf(unaryErr); ans.GetError().Code != uint32(code) || !strings.Contains(unaryErr.Error(), ans.GetError().Message) {
		t.Errorf("stream error %v, unary error %v", ans.GetError(), unaryErr)
	}
}

// A node that does not serve Records (an older kvd) is called through
// the unary RPCs: the stream says so without running the call.
func TestRecordStreamFallsBackToUnary(t *testing.T) {
	n, rangeID := recordStreamNode(t)
	addr, _ := servePeer(t, n, servedElsewhere(http.NotFoundHandler()))
	rs := transport.NewRecordStreams(transport.NewPeers(transport.H2CClient()))
	defer rs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 2 {
		if _, err := rs.Call(ctx, 1, addr, writeCall(rangeID, "k", "v", time.Now().UnixNano())); !errors.Is(err, transport.ErrNoRecordsStream) {
			t.Fatalf("call %d to a node without Records: %v", i, err)
		}
	}
	if rec, err := n.ev.ReadLocalRecord(rangeID, []byte("k")); err != nil || !rec.Version.IsZero() {
		t.Fatalf("the refused call ran: %+v, %v", rec, err)
	}
}

// A peer that is down fails the call at once, and a closed set of
// streams fails new calls.
func TestRecordStreamPeerDown(t *testing.T) {
	rs := transport.NewRecordStreams(transport.NewPeers(transport.H2CClient()))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addr := freeLoopbackAddr(t)
	start := time.Now()
	_, err := rs.Call(ctx, 1, addr, readCall(2, "k"))
	if !errors.Is(err, store.ErrUnavailable) || ctx.Err() != nil {
		t.Fatalf("call to a node that is down: %v after %v", err, time.Since(start))
	}
	rs.Close()
	if _, err := rs.Call(ctx, 1, addr, readCall(2, "k")); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("call after close: %v", err)
	}
}

// freeLoopbackAddr returns a loopback address nothing listens on now.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// blackhole relays TCP connections to a target until cut; then it keeps
// them open and drops whatever comes, like a peer that vanished without
// closing its connections.
type blackhole struct {
	ln    net.Listener
	cut   atomic.Bool
	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func newBlackhole(t *testing.T, target string) *blackhole {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{ln: ln}
	relay := func(dst, src net.Conn) {
		defer b.wg.Done()
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if err != nil {
				dst.Close()
				return
			}
			if !b.cut.Load() {
				dst.Write(buf[:n])
			}
		}
	}
	b.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			d, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			b.mu.Lock()
			b.conns = append(b.conns, c, d)
			b.mu.Unlock()
			b.wg.Add(2)
			go relay(d, c)
			go relay(c, d)
		}
	})
	t.Cleanup(func() {
		ln.Close()
		b.mu.Lock()
		for _, c := range b.conns {
			c.Close()
		}
		b.mu.Unlock()
		b.wg.Wait()
	})
	return b
}

// A peer that goes silent without closing the connection: the health
// check's ping goes unanswered, the connection is closed, and the call
// waiting on the stream fails at once instead of at its deadline.
func TestRecordStreamSilentPeer(t *testing.T) {
	n, rangeID := recordStreamNode(t)
	addr, _ := servePeer(t, n, nil)
	hole := newBlackhole(t, addr)
	rs := transport.NewRecordStreams(transport.NewPeers(transport.NewH2CClient(100*time.Millisecond, 200*time.Millisecond)))
	defer rs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	via := hole.ln.Addr().String()
	if _, err := rs.Call(ctx, 1, via, writeCall(rangeID, "k", "v", time.Now().UnixNano())); err != nil {
		t.Fatal(err)
	}
	hole.cut.Store(true)
	start := time.Now()
	_, err := rs.Call(ctx, 1, via, readCall(rangeID, "k"))
	if !errors.Is(err, store.ErrUnavailable) || ctx.Err() != nil {
		t.Fatalf("call to a silent peer: %v after %v", err, time.Since(start))
	}
	t.Logf("call to a silent peer failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
}
