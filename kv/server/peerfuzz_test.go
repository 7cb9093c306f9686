package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	peerv1 "github.com/quorumkv/quorumkv/api/quorumkv/peer/v1"
	"github.com/quorumkv/quorumkv/api/quorumkv/peer/v1/peerv1connect"
	v1 "github.com/quorumkv/quorumkv/api/quorumkv/v1"
	"github.com/quorumkv/quorumkv/kv/catalog"
)

// peerProcedures are the peer protocol's calls, by the index FuzzPeer
// picks them with; streams marks the client streams, whose bodies are
// enveloped.
var peerProcedures = []string{
	peerv1connect.PeerJoinProcedure, peerv1connect.PeerScanRangeProcedure, peerv1connect.PeerSplitProcedure,
	peerv1connect.PeerWriteRecordProcedure, peerv1connect.PeerReadRecordProcedure, peerv1connect.PeerScanRecordsProcedure,
	peerv1connect.PeerMerkleLeavesProcedure, peerv1connect.PeerLeafRecordsProcedure, peerv1connect.PeerCasPrepareProcedure,
	peerv1connect.PeerCasAcceptProcedure, peerv1connect.PeerMetaIndexProcedure, peerv1connect.PeerLetGoProcedure,
	peerv1connect.PeerFilledProcedure, peerv1connect.PeerAcceptorsProcedure, peerv1connect.PeerSnapshotChunkProcedure,
	peerv1connect.PeerRaftProcedure, peerv1connect.PeerRecordsProcedure,
}

var peerStreams = map[string]bool{peerv1connect.PeerRaftProcedure: true, peerv1connect.PeerRecordsProcedure: true}

// A caller of the peer protocol is a node of the cluster (TLS or the
// cluster secret prove it), but a node with a bug, or one an attacker
// took, sends anything: FuzzPeer sends fuzzed bodies to every peer call
// of a one-node cluster, decoded by protobuf-go and then checked by the
// handlers, and requires no panic and no hang. Its seeds (a well-formed
// request per call, with hostile values: unknown ranges, huge depths and
// limits, far-future records) run as a plain test.
func FuzzPeer(f *testing.F) {
	n, h := serveOneNode(f, ServerInfo{NodeName: "n1"})
	// An eventual keyspace, for the record calls to reach a replica.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := n.CreateKeyspace(ctx, catalog.KeyspaceDescriptor{Name: "ev", Mode: catalog.ModeEventual, Replicas: 1, Ranges: 2}); err != nil {
		f.Fatal(err)
	}
	ev := n.Store().Catalog().Ranges["ev"][0].ID
	seed := func(p string, m proto.Message) {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		for i, q := range peerProcedures {
			if q == p {
				if peerStreams[p] {
					b = envelope(b)
				}
				f.Add(uint8(i), b)
			}
		}
	}
	seed(peerv1connect.PeerJoinProcedure, &peerv1.JoinRequest{NodeName: "n9", Address: "127.0.0.1:1", Weight: 1 << 31})
	seed(peerv1connect.PeerScanRangeProcedure, &peerv1.ScanRangeRequest{RangeId: 2, Limit: 1 << 31})
	seed(peerv1connect.PeerSplitProcedure, &peerv1.SplitRequest{RangeId: 2, Mid: 1, NewRangeId: 99})
	seed(peerv1connect.PeerWriteRecordProcedure, &peerv1.WriteRecordRequest{RangeId: 2, Key: []byte("k"),
		Record: &peerv1.Record{WallTime: 1 << 62, Value: []byte("forever")}})
	seed(peerv1connect.PeerReadRecordProcedure, &peerv1.ReadRecordRequest{RangeId: 1 << 60, Key: []byte("k")})
	seed(peerv1connect.PeerScanRecordsProcedure, &peerv1.ScanRecordsRequest{RangeId: 3, Limit: 1 << 31})
	seed(peerv1connect.PeerMerkleLeavesProcedure, &peerv1.MerkleLeavesRequest{RangeId: 2, Depth: 1 << 20})
	seed(peerv1connect.PeerLeafRecordsProcedure, &peerv1.LeafRecordsRequest{RangeId: 2, Depth: 40, Leaves: []uint32{1 << 31}, Limit: 1 << 31})
	seed(peerv1connect.PeerCasPrepareProcedure, &peerv1.CasPrepareRequest{RangeId: 2, Key: []byte("k"), From: 7})
	seed(peerv1connect.PeerCasAcceptProcedure, &peerv1.CasAcceptRequest{RangeId: 2, Key: []byte("k"), From: 7, Value: []byte("x")})
	seed(peerv1connect.PeerMetaIndexProcedure, &peerv1.MetaIndexRequest{})
	seed(peerv1connect.PeerLetGoProcedure, &peerv1.LetGoRequest{RangeId: 2, NodeId: 1})
	seed(peerv1connect.PeerFilledProcedure, &peerv1.FilledRequest{RangeId: 1})
	seed(peerv1connect.PeerAcceptorsProcedure, &peerv1.AcceptorsRequest{RangeId: 2, After: []byte{0xff}})
	seed(peerv1connect.PeerSnapshotChunkProcedure, &peerv1.SnapshotChunkRequest{FromNode: 1, ToNode: 1, Request: []byte{1, 2, 3}})
	seed(peerv1connect.PeerRaftProcedure, &peerv1.RaftRequest{FromNode: 2, ToNode: 1, Messages: []*peerv1.RaftMessage{{RangeId: 2, Message: []byte{0, 1, 2}}}})
	seed(peerv1connect.PeerRecordsProcedure, &peerv1.RecordsRequest{Calls: []*peerv1.RecordCall{{Id: 1,
		Call: &peerv1.RecordCall_Write{Write: &peerv1.WriteRecordRequest{RangeId: 5, Key: []byte("k"), Record: &peerv1.Record{Tombstone: true}}}}}})
	for _, fwd := range []*peerv1.ForwardCall{
		{Request: &peerv1.ForwardCall_Put{Put: &v1.PutRequest{Keyspace: "default", Key: []byte("k"), Value: []byte("v")}}, TimeoutMs: 1 << 31},
		{Request: &peerv1.ForwardCall_Get{}},
		{Request: &peerv1.ForwardCall_CompareAndSwap{CompareAndSwap: &v1.CompareAndSwapRequest{Keyspace: "ev", Key: []byte("k")}}, Authorization: "Bearer x"},
		{Request: &peerv1.ForwardCall_Delete{Delete: &v1.DeleteRequest{Keyspace: "nosuch"}}},
		{},
	} {
		seed(peerv1connect.PeerRecordsProcedure, &peerv1.RecordsRequest{Calls: []*peerv1.RecordCall{{Id: 2, Call: &peerv1.RecordCall_Forward{Forward: fwd}}}})
	}
	f.Add(uint8(0), []byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	seed(peerv1connect.PeerWriteRecordProcedure, &peerv1.WriteRecordRequest{RangeId: ev, Key: []byte("k"), Record: &peerv1.Record{WallTime: time.Now().UnixNano(), Value: []byte("v")}})
	seed(peerv1connect.PeerMerkleLeavesProcedure, &peerv1.MerkleLeavesRequest{RangeId: ev, Depth: 1 << 20})
	seed(peerv1connect.PeerLeafRecordsProcedure, &peerv1.LeafRecordsRequest{RangeId: ev, Depth: 40, Leaves: []uint32{1 << 31, 0}, Limit: 1 << 31})
	seed(peerv1connect.PeerScanRecordsProcedure, &peerv1.ScanRecordsRequest{RangeId: ev, Prefix: []byte("k"), Limit: 1 << 31})
	seed(peerv1connect.PeerCasPrepareProcedure, &peerv1.CasPrepareRequest{RangeId: ev, Key: []byte("k"), From: 7, Ballot: &peerv1.Ballot{}})
	seed(peerv1connect.PeerCasAcceptProcedure, &peerv1.CasAcceptRequest{RangeId: ev, Key: []byte("k"), From: 7, Value: []byte{0}})
	seed(peerv1connect.PeerAcceptorsProcedure, &peerv1.AcceptorsRequest{RangeId: ev, After: []byte{0xff}})
	seed(peerv1connect.PeerLetGoProcedure, &peerv1.LetGoRequest{RangeId: ev, NodeId: 1})
	seed(peerv1connect.PeerFilledProcedure, &peerv1.FilledRequest{RangeId: ev})

	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		p := peerProcedures[int(which)%len(peerProcedures)]
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, "POST", "http://n1"+p, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/proto")
		if peerStreams[p] {
			req.Header.Set("Content-Type", "application/connect+proto")
		}
		start := time.Now()
		h.ServeHTTP(httptest.NewRecorder(), req)
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("%s took %v past its request's deadline", p, d)
		}
		// The node still serves.
		if _, err := n.Put(ctx, "default", []byte("probe"), []byte{which}); err != nil && ctx.Err() == nil {
			t.Fatalf("a put after a fuzzed %s: %v", p, err)
		}
	})
}

// envelope frames one message of a Connect stream.
func envelope(b []byte) []byte {
	out := make([]byte, 5, 5+len(b))
	binary.BigEndian.PutUint32(out[1:], uint32(len(b)))
	return append(out, b...)
}
