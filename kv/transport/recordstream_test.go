package transport

import (
	"testing"

	"google.golang.org/protobuf/proto"

	peerv1 "github.com/quorumkv/quorumkv/api/quorumkv/peer/v1"
)

// A batch of record calls stays near MaxBatchBytes however big the
// values, so that it fits the peer message limit; a call bigger than
// that still goes, alone.
func TestRecordBatchBytesBounded(t *testing.T) {
	call := func(valueBytes int) *peerv1.RecordCall {
		return &peerv1.RecordCall{Call: &peerv1.RecordCall_Write{Write: &peerv1.WriteRecordRequest{
			Record: &peerv1.Record{Value: make([]byte, valueBytes)}}}}
	}
	s := &recordStream{}
	for range 10 {
		s.mu.queue = append(s.mu.queue, call(3<<20))
	}
	s.mu.queue = append(s.mu.queue, call(20<<20))
	for i := 0; i < 10; i++ {
		s.mu.queue = append(s.mu.queue, call(10))
	}
	var sizes [][2]int
	for {
		batch := s.take()
		if len(batch) == 0 {
			break
		}
		size := 0
		for _, c := range batch {
			size += proto.Size(c)
		}
		sizes = append(sizes, [2]int{len(batch), size})
		if len(batch) > 1 && size > MaxBatchBytes {
			t.Errorf("a batch of %d calls holds %d bytes, over MaxBatchBytes %d", len(batch), size, MaxBatchBytes)
		}
	}
	// 10 calls of 3 MiB go two by two; the 20 MiB call alone; then the
	// small ones together.
	want := []int{2, 2, 2, 2, 2, 1, 10}
	if len(sizes) != len(want) {
		t.Fatalf("batches (calls, bytes): %v, want %v calls", sizes, want)
	}
	for i, w := range want {
		if sizes[i][0] != w {
			t.Errorf("batch %d: %d calls, want %d (all: %v)", i, sizes[i][0], w, sizes)
		}
	}
}
