package raft

import "fmt"

// inflights is the window of MsgApp sent to one follower and not yet
// acknowledged: the index of the last entry of each, and its bytes. It is
// full when it holds maxMsgs messages or maxBytes bytes.
type inflights struct {
	buf      []inflight // ring buffer of at most maxMsgs
	start    int
	count    int
	bytes    uint64
	maxMsgs  int
	maxBytes uint64
}

type inflight struct {
	index uint64
	bytes uint64
}

func newInflights(maxMsgs int, maxBytes uint64) *inflights {
	return &inflights{maxMsgs: maxMsgs, maxBytes: maxBytes}
}

// add records a message whose last entry is index. The caller checks full
// first.
func (in *inflights) add(index, bytes uint64) {
	if in.full() {
		panic("raft: adding to a full inflights window")
	}
	if in.buf == nil || len(in.buf) < in.maxMsgs && in.count == len(in.buf) {
		in.grow()
	}
	in.buf[(in.start+in.count)%len(in.buf)] = inflight{index: index, bytes: bytes}
	in.count++
	in.bytes += bytes
}

// grow doubles the buffer up to maxMsgs: most followers keep few messages
// in flight and should not cost maxMsgs slots each.
func (in *inflights) grow() {
	n := min(max(2*len(in.buf), 4), in.maxMsgs)
	buf := make([]inflight, n)
	for i := range in.count {
		buf[i] = in.buf[(in.start+i)%len(in.buf)]
	}
	in.buf, in.start = buf, 0
}

// freeLE releases every message whose last entry is at most index.
func (in *inflights) freeLE(index uint64) {
	for in.count > 0 && in.buf[in.start].index <= index {
		in.bytes -= in.buf[in.start].bytes
		in.start = (in.start + 1) % len(in.buf)
		in.count--
	}
	if in.count == 0 {
		in.start = 0
	}
}

func (in *inflights) full() bool {
	return in.count >= in.maxMsgs || (in.maxBytes != 0 && in.bytes >= in.maxBytes)
}

func (in *inflights) reset() {
	in.start, in.count, in.bytes = 0, 0, 0
}

func (in *inflights) String() string {
	return fmt.Sprintf("%d msgs/%d bytes", in.count, in.bytes)
}
