package faults

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/internal/workload"
)

// Target is a keyspace the workloads run on.
type Target struct {
	Keyspace string
	Mode     string // raft, paxos or eventual: eventual ones have W=2, R=2
}

// Linearizable reports whether the keyspace promises linearizability
// (raft and paxos do; an eventual keyspace promises it only for its
// compare-and-swap, which is Basic Paxos per key).
func (t Target) Linearizable() bool { return t.Mode != "eventual" }

// Workload names, the rows of the report.
const (
	Register = "register"
	Set      = "set"
	Sale     = "flash-sale"
)

// recorder holds what the clients of one round were told, for the
// checkers. Safe for concurrent use.
type recorder struct {
	start time.Time
	hist  *sim.History // the register workload of linearizable keyspaces

	mu struct {
		sync.Mutex
		// writes are the successful writes per keyspace, and per key
		// of the register workload (under "keyspace/key").
		writes map[string][]span
		ops    map[[2]string]int // operations per {keyspace, workload}
		set    map[string]*element
		items  map[string]*item
		// errs counts the errors clients got, per keyspace and message
		// (numbers stripped), for the log.
		errs map[string]map[string]int
		// registerOps are the register workload's operations, by
		// keyspace/key, for explaining a slow recovery in the log.
		registerOps map[string][]registerOp
	}
}

// span is when an operation was invoked and when it returned, since the
// round's start.
type span struct{ call, ret time.Duration }

// element is one element of the set workload: a key added once and
// perhaps deleted once afterwards, by one client.
type element struct {
	target  Target
	key     string
	add     workload.Outcome
	deleted bool // a delete was sent, after the add was acknowledged
	del     workload.Outcome
	addErr  error
}

// item is one phone of the flash sale: buyers race to compare-and-swap it
// from absent to their name.
type item struct {
	target  Target
	key     string
	won     []string // buyers told they bought it
	lost    []string // buyers told the condition failed
	unknown []string // buyers who never learned
	// failed are the errors of buyers told nothing was written, by
	// buyer: what a checker quotes when one of them owns the phone.
	failed map[string][]string
}

func newRecorder() *recorder {
	r := &recorder{start: time.Now()}
	r.hist = sim.NewHistoryClock(r.since)
	r.mu.writes = map[string][]span{}
	r.mu.ops = map[[2]string]int{}
	r.mu.set = map[string]*element{}
	r.mu.items = map[string]*item{}
	r.mu.errs = map[string]map[string]int{}
	r.mu.registerOps = map[string][]registerOp{}
	return r
}

func (r *recorder) since() time.Duration { return time.Since(r.start) }

// op counts an operation of a workload and, for a successful write, keeps
// when it ran, for the keyspace and, if key is not "", for the key.
func (r *recorder) op(t Target, wl, key string, call time.Duration, write bool, out workload.Outcome) {
	ret := r.since()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mu.ops[[2]string{t.Keyspace, wl}]++
	if write && out == workload.Done {
		r.mu.writes[t.Keyspace] = append(r.mu.writes[t.Keyspace], span{call, ret})
		if key != "" {
			r.mu.writes[t.Keyspace+"/"+key] = append(r.mu.writes[t.Keyspace+"/"+key], span{call, ret})
		}
	}
}

// registerOp is one operation of the register workload as the log tells
// it.
type registerOp struct {
	worker    int
	call, ret time.Duration
	op        workload.Op
}

// failed counts an error a client got.
func (r *recorder) failed(t Target, err error) {
	if err == nil || errors.Is(err, client.ErrNotFound) || errors.Is(err, client.ErrConditionFailed) {
		return
	}
	msg := digits.ReplaceAllString(err.Error(), "N")
	if len(msg) > 160 {
		msg = msg[:160] + "..."
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.errs[t.Keyspace] == nil {
		r.mu.errs[t.Keyspace] = map[string]int{}
	}
	r.mu.errs[t.Keyspace][msg]++
}

var digits = regexp.MustCompile(`[0-9]+`)

// clientFor is the Go client of worker w: every node's endpoint, a
// different one first for each worker, and the real client's retries.
func clientFor(c *Cluster, w int) (*client.Client, error) {
	n := len(c.Nodes)
	var eps []string
	for i := range n {
		eps = append(eps, c.Nodes[(w+i)%n].Addr())
	}
	return client.New(client.Config{Endpoints: eps, Timeout: 3 * time.Second, MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
}

// Workers per keyspace, and the pause between two operations of one
// worker: the histories stay small enough for porcupine to check in
// seconds, and the cluster's two cores are not saturated, so that an
// unavailability measured is the fault's and not the load's.
const (
	registerWorkers = 3
	setWorkers      = 3 // one coordinated by each node of three, for eventual keyspaces
	saleWorkers     = 3
	thinkTime       = 15 * time.Millisecond
	registerKeys    = 6
	// saleItemEvery is how often a new phone goes on sale; buyers race
	// for the newest one.
	saleItemEvery = 250 * time.Millisecond
)

// runWorkloads runs every workload on every target until stop is closed,
// and waits for its workers. prefix keeps the keys of one round apart
// from the others'.
func runWorkloads(c *Cluster, targets []Target, prefix string, rec *recorder, stop <-chan struct{}) error {
	var wg sync.WaitGroup
	var errs []error
	worker := 0
	start := func(f func(cl *client.Client, rng *rand.Rand, w int)) {
		w := worker
		worker++
		cl, err := clientFor(c, w)
		if err != nil {
			errs = append(errs, err)
			return
		}
		wg.Go(func() {
			f(cl, rand.New(rand.NewPCG(uint64(w), uint64(rec.start.UnixNano()))), w)
		})
	}
	for _, t := range targets {
		if t.Linearizable() {
			for range registerWorkers {
				start(func(cl *client.Client, rng *rand.Rand, w int) { registerWorker(cl, rng, w, t, prefix, rec, stop) })
			}
		}
		for range setWorkers {
			start(func(cl *client.Client, rng *rand.Rand, w int) { setWorker(cl, rng, w, t, prefix, rec, stop) })
		}
		for range saleWorkers {
			start(func(cl *client.Client, rng *rand.Rand, w int) { saleWorker(cl, w, t, prefix, rec, stop) })
		}
	}
	wg.Wait()
	return errors.Join(errs...)
}

// stopped reports whether stop is closed, after the think time.
func stopped(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	case <-time.After(thinkTime):
		return false
	}
}

// registerKeyNames are the keys of the register workload of a round.
func registerKeyNames(prefix string) []string {
	keys := make([]string, registerKeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s/reg-%d", prefix, i)
	}
	return keys
}

func registerWorker(cl *client.Client, rng *rand.Rand, w int, t Target, prefix string, rec *recorder, stop <-chan struct{}) {
	keys := registerKeyNames(prefix)
	for i := 0; !stopped(stop); i++ {
		call := rec.since()
		op := workload.RegisterOp(context.Background(), rec.hist, sim.NodeID(w+1), cl, rng, t.Keyspace, keys, fmt.Sprintf("w%d-%d", w, i))
		rec.failed(t, op.Err)
		rec.op(t, Register, op.Key, call, op.Write, op.Outcome)
		rec.mu.Lock()
		rec.mu.registerOps[t.Keyspace+"/"+op.Key] = append(rec.mu.registerOps[t.Keyspace+"/"+op.Key], registerOp{w, call, rec.since(), op})
		rec.mu.Unlock()
	}
}

// setWorker adds elements of its own, one at a time, and deletes one of
// those it added (and was told so) now and then.
func setWorker(cl *client.Client, rng *rand.Rand, w int, t Target, prefix string, rec *recorder, stop <-chan struct{}) {
	ctx := context.Background()
	var added []*element
	for i := 0; !stopped(stop); i++ {
		if len(added) > 0 && rng.IntN(4) == 0 {
			e := added[rng.IntN(len(added))]
			added = slices.DeleteFunc(added, func(x *element) bool { return x == e })
			call := rec.since()
			_, err := cl.Delete(ctx, t.Keyspace, []byte(e.key), client.Quorum{})
			rec.failed(t, err)
			out := workload.WriteOutcome(err)
			rec.mu.Lock()
			e.deleted, e.del = true, out
			rec.mu.Unlock()
			rec.op(t, Set, "", call, true, out)
			continue
		}
		e := &element{target: t, key: fmt.Sprintf("%s/set-w%d-%d", prefix, w, i)}
		call := rec.since()
		_, err := cl.Put(ctx, t.Keyspace, []byte(e.key), []byte("member"), client.Quorum{})
		rec.failed(t, err)
		e.add, e.addErr = workload.WriteOutcome(err), err
		rec.mu.Lock()
		rec.mu.set[t.Keyspace+"/"+e.key] = e
		rec.mu.Unlock()
		rec.op(t, Set, "", call, true, e.add)
		if e.add == workload.Done {
			added = append(added, e)
		}
	}
}

// saleWorker is a buyer: it tries to buy the phone on sale now, by
// compare-and-swap from absent to its own name, and the one before it.
func saleWorker(cl *client.Client, w int, t Target, prefix string, rec *recorder, stop <-chan struct{}) {
	ctx := context.Background()
	buyer := fmt.Sprintf("buyer-%d", w)
	for !stopped(stop) {
		now := int(rec.since() / saleItemEvery)
		for _, n := range []int{now, now - 1} {
			if n < 0 {
				continue
			}
			key := fmt.Sprintf("%s/item-%d", prefix, n)
			call := rec.since()
			_, err := cl.CompareAndSwap(ctx, t.Keyspace, []byte(key), client.Expect{Absent: true}, []byte(buyer))
			rec.failed(t, err)
			out := workload.WriteOutcome(err)
			rec.mu.Lock()
			it := rec.mu.items[t.Keyspace+"/"+key]
			if it == nil {
				it = &item{target: t, key: key}
				rec.mu.items[t.Keyspace+"/"+key] = it
			}
			switch {
			case errors.Is(err, client.ErrConditionFailed):
				it.lost = append(it.lost, buyer)
				out = workload.Done // an answer: it did not buy
			case out == workload.Done:
				it.won = append(it.won, buyer)
			case out == workload.Unknown:
				it.unknown = append(it.unknown, buyer)
			default:
				if it.failed == nil {
					it.failed = map[string][]string{}
				}
				it.failed[buyer] = append(it.failed[buyer], fmt.Sprintf("%.3fs: %v", call.Seconds(), err))
			}
			rec.mu.Unlock()
			rec.op(t, Sale, "", call, true, out)
		}
	}
}
