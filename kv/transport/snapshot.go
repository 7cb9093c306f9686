package transport

import (
	"context"
	"errors"
	"time"

	"connectrpc.com/connect"

	peerv1 "github.com/quorumkv/quorumkv/api/quorumkv/peer/v1"
	"github.com/quorumkv/quorumkv/api/quorumkv/peer/v1/peerv1connect"
)

// MaxSnapshotChunkBytes bounds the answer to one SnapshotChunk call as
// the client reads it: a chunk (store.StoreConfig.SnapshotChunkBytes, 1
// MiB by default) plus one record (at most 32 MiB), with room to spare. A
// peer cannot make this node allocate more for one chunk.
const MaxSnapshotChunkBytes = 64 << 20

// snapshotChunkTimeout bounds one SnapshotChunk call, so that a goroutine
// waiting on a peer that vanished ends. The store gives up on the chunk
// on its own clock too (SnapshotFetchTimeoutTicks).
const snapshotChunkTimeout = 30 * time.Second

// FetchSnapshotChunk implements store.SnapshotFetcher: one SnapshotChunk
// call on a goroutine of its own, which Close waits for (and cancels).
func (t *PeerTransport) FetchSnapshotChunk(to uint64, req []byte, done func(resp []byte, err error)) {
	addr, ok := t.addr(to)
	t.mu.Lock()
	closed := t.mu.closed
	if !closed {
		t.wg.Add(1)
	}
	t.mu.Unlock()
	switch {
	case closed:
		done(nil, errors.New("transport closed"))
		return
	case !ok:
		t.wg.Done()
		done(nil, errUnknownPeer)
		return
	}
	go func() {
		defer t.wg.Done()
		ctx, cancel := context.WithTimeout(t.ctx, snapshotChunkTimeout)
		defer cancel()
		client := peerv1connect.NewPeerClient(t.client, baseURL(addr), connect.WithGRPC(), connect.WithReadMaxBytes(MaxSnapshotChunkBytes))
		resp, err := client.SnapshotChunk(ctx, connect.NewRequest(&peerv1.SnapshotChunkRequest{
			FromNode: t.self, ToNode: to, ClusterId: t.clusterID, Request: req,
		}))
		if err != nil {
			done(nil, err)
			return
		}
		done(resp.Msg.Chunk, nil)
	}()
}
