package faults

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// Round is one nemesis acting on a cluster for a while as the workloads
// run on the targets.
type Round struct {
	Nemesis  *Nemesis
	Duration time.Duration
	Targets  []Target
	Seed     uint64
	// Prefix keeps the round's keys apart from other rounds'.
	Prefix string
	// CheckTimeout bounds porcupine's check of one keyspace's registers.
	CheckTimeout time.Duration
	Logf         func(format string, args ...any)
}

// warmup is how long the workloads run before the first fault: the
// unavailability measured after a fault is then the fault's, not the
// start's.
const warmup = 2 * time.Second

// afterLastHeal is how long the clients run at least after the last
// fault is healed.
const afterLastHeal = 5 * time.Second

// settle is how long the healed cluster is left alone before the checks:
// hints are replayed every second (records.DefaultHintReplayInterval).
const settle = 3 * time.Second

// RunRound runs one round on c: the workloads on every target, the
// nemesis injecting and healing faults until the round's time is up; then
// it heals everything, waits for every node to be ready, and checks what
// the clients were told. It returns a Result per workload and target, and
// an error if the harness itself failed (not for a violation: those are
// in the results).
func RunRound(ctx context.Context, c *Cluster, r Round) ([]*Result, error) {
	logf := r.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	admin, err := clientFor(c, 0)
	if err != nil {
		return nil, err
	}
	e := &env{c: c, rng: rand.New(rand.NewPCG(r.Seed, 0x9e3779b97f4a7c15)), targets: r.Targets, admin: admin}
	rec := newRecorder()
	stop := make(chan struct{})
	workers := make(chan error, 1)
	go func() { workers <- runWorkloads(c, r.Targets, r.Prefix, rec, stop) }()

	var faults []time.Duration
	var nemesisErr error
	time.Sleep(warmup)
	for rec.since()+r.Nemesis.Hold <= r.Duration {
		at := rec.since()
		what, heal, err := r.Nemesis.inject(ctx, e)
		if err != nil {
			nemesisErr = fmt.Errorf("%s: injecting: %w", r.Nemesis.Name, err)
			break
		}
		faults = append(faults, at)
		logf("%6.1fs %s: %s", at.Seconds(), r.Nemesis.Name, what)
		time.Sleep(r.Nemesis.Hold)
		if err := heal(ctx); err != nil {
			nemesisErr = fmt.Errorf("%s: healing %s: %w", r.Nemesis.Name, what, err)
			break
		}
		logf("%6.1fs healed", rec.since().Seconds())
		time.Sleep(r.Nemesis.Rest)
	}
	// The clients go on a while after the last heal, so that the last
	// fault's recovery is measured too (partition-flapping rests 0.5 s).
	if extra := afterLastHeal - r.Nemesis.Rest; len(faults) > 0 && extra > 0 {
		time.Sleep(extra)
	}
	close(stop)
	if err := <-workers; err != nil {
		return nil, err
	}
	if err := errors.Join(nemesisErr, restore(ctx, c, e)); err != nil {
		return nil, err
	}
	// Healed, the cluster converges: hints reach the replicas that
	// missed writes (every second), so a write stored on one replica cut
	// off is on the others too.
	time.Sleep(settle)
	if err := awaitLeaders(ctx, e, time.Minute); err != nil {
		e.notes = append(e.notes, err.Error())
	}
	logf("%6.1fs workloads stopped, cluster healed and settled; checking", rec.since().Seconds())

	start := time.Now()
	registers := checkRegisters(rec, r.Targets, r.CheckTimeout)
	logf("registers checked in %v", round(time.Since(start)))
	start = time.Now()
	set, err := checkSet(ctx, admin, rec, r.Targets)
	if err != nil {
		return nil, err
	}
	sale, err := checkSale(ctx, admin, rec, r.Targets)
	if err != nil {
		return nil, err
	}
	logf("set and flash sale read back in %v", round(time.Since(start)))
	var out []*Result
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, t := range r.Targets {
		// A fault may stop the writes of some ranges only (those the
		// node cut off led): where the register workload runs, a
		// fault's unavailability is its slowest key's, as each key
		// lives in one range.
		waits := unavailability(rec.mu.writes[t.Keyspace], faults)
		if t.Linearizable() {
			clear(waits)
			slowest := make([]string, len(faults))
			for _, key := range registerKeyNames(r.Prefix) {
				for i, u := range unavailability(rec.mu.writes[t.Keyspace+"/"+key], faults) {
					switch {
					case waits[i] < 0:
					case u < 0:
						waits[i], slowest[i] = -1, key
					case u > waits[i]:
						waits[i], slowest[i] = u, key
					}
				}
			}
			for i, w := range waits {
				if w < 0 || w > slowRecovery {
					explainRecovery(logf, rec, t, slowest[i], faults[i], w)
				}
			}
		}
		if len(faults) > 0 {
			logf("keyspace %s (%s): writes resumed after each fault in %v", t.Keyspace, t.Mode, waits)
		}
		for msg, n := range rec.mu.errs[t.Keyspace] {
			logf("keyspace %s (%s): %d times: %s", t.Keyspace, t.Mode, n, msg)
		}
		unavailable := worst(waits)
		for _, res := range []*Result{registers[t.Keyspace], set[t.Keyspace], sale[t.Keyspace]} {
			if res == nil {
				continue
			}
			res.Nemesis, res.Faults, res.Unavailable = r.Nemesis.Name, len(faults), unavailable
			res.Ops = rec.mu.ops[[2]string{t.Keyspace, res.Workload}]
			out = append(out, res)
		}
	}
	for _, note := range e.notes {
		out = append(out, &Result{Nemesis: r.Nemesis.Name, Workload: "identity", Violations: []string{note}})
	}
	return out, nil
}

// restore heals every fault a round may have left: the cuts, the paused
// and stopped nodes, the failpoints; and waits until every node is ready.
func restore(ctx context.Context, c *Cluster, e *env) error {
	errs := []error{c.Heal(ctx), e.clearFailpoints(ctx)}
	for _, n := range c.Nodes {
		switch running, err := c.Running(ctx, n); {
		case err != nil:
			errs = append(errs, err)
		case n.Paused():
			errs = append(errs, c.Unpause(ctx, n))
		case n.Up() && !running:
			errs = append(errs, c.Kill(ctx, n), c.Start(ctx, n))
		case !n.Up():
			errs = append(errs, c.Start(ctx, n))
		}
	}
	for _, n := range c.Nodes {
		errs = append(errs, c.WaitReady(ctx, n, time.Minute))
	}
	return errors.Join(errs...)
}

// slowRecovery is a recovery slow enough that the log tells how it went.
const slowRecovery = 2500 * time.Millisecond

// explainRecovery logs the operations on key that ran from the fault at
// at until writes resumed, wait later: what each was told and when.
func explainRecovery(logf func(string, ...any), rec *recorder, t Target, key string, at, wait time.Duration) {
	end := at + wait
	if wait < 0 {
		end = rec.since()
	}
	logf("keyspace %s (%s): writes to %s resumed %v after the fault at %.1fs; its operations then:", t.Keyspace, t.Mode, key, wait, at.Seconds())
	for _, op := range rec.mu.registerOps[t.Keyspace+"/"+key] {
		if op.ret < at || op.call > end {
			continue
		}
		logf("  worker %d [%.3fs, %.3fs] write %t: outcome %d: %v", op.worker, op.call.Seconds(), op.ret.Seconds(), op.op.Write, op.op.Outcome, op.op.Err)
	}
}

// awaitLeaders waits until every range of the raft and paxos targets has
// a leader that one of its replicas' nodes knows, and says which have
// none after within.
func awaitLeaders(ctx context.Context, e *env, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		var missing []string
		for key, leader := range e.leaders(ctx) {
			if leader == "" {
				missing = append(missing, key)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			slices.Sort(missing)
			return fmt.Errorf("%v after the cluster was healed, no node knows a leader of these ranges: %v", within, missing)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
