package sim

import (
	"container/heap"
	"time"
)

// event is one entry of the simulator's agenda: a function to run at a
// virtual instant. Events are ordered by (at, seq); seq is the order in which
// they were scheduled, so two events due at the same instant always run in
// the same order for the same seed. Ordering by time alone would leave ties to
// the heap's internal layout.
type event struct {
	at       time.Duration
	seq      uint64
	fn       func()
	canceled bool
	index    int // position in the heap, maintained by eventQueue
}

// eventQueue is a min-heap of events. It is only touched by the simulator's
// one goroutine.
type eventQueue []*event

func (q eventQueue) Len() int { return len(q) }

func (q eventQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}

func (q eventQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index = i
	q[j].index = j
}

func (q *eventQueue) Push(x any) {
	ev := x.(*event)
	ev.index = len(*q)
	*q = append(*q, ev)
}

func (q *eventQueue) Pop() any {
	old := *q
	n := len(old)
	ev := old[n-1]
	old[n-1] = nil // let the GC have the closure
	ev.index = -1
	*q = old[:n-1]
	return ev
}

// push schedules ev.
func (q *eventQueue) push(ev *event) { heap.Push(q, ev) }

// pop removes and returns the earliest event.
func (q *eventQueue) pop() *event { return heap.Pop(q).(*event) }

// peek returns the earliest event without removing it, or nil.
func (q eventQueue) peek() *event {
	if len(q) == 0 {
		return nil
	}
	return q[0]
}

// remove takes a canceled event out of the heap at once, so a test that
// arms and stops many timers (a Raft election timer reset on every
// heartbeat) does not grow the queue without bound.
func (q *eventQueue) remove(ev *event) {
	if ev.index >= 0 && ev.index < len(*q) && (*q)[ev.index] == ev {
		heap.Remove(q, ev.index)
	}
}

// A Timer is a pending call scheduled by [Sim.After], [Env.After] or
// [Env.Every]. Its zero value is not usable.
type Timer struct {
	s  *Sim
	ev *event
	// stopped is kept apart from ev.canceled because a repeating timer
	// (Env.Every) replaces ev on each fire: Stop must also prevent the
	// re-arming that happens inside the callback.
	stopped bool
}

// Stop cancels the timer. It reports whether the call prevented a pending
// fire, like [time.Timer.Stop]. Stopping a stopped or fired timer is a no-op.
func (t *Timer) Stop() bool {
	if t == nil || t.stopped {
		return false
	}
	t.stopped = true
	if t.ev == nil || t.ev.canceled || t.ev.index < 0 {
		return false
	}
	t.ev.canceled = true
	t.s.queue.remove(t.ev)
	return true
}
