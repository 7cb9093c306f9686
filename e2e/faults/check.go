package faults

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/internal/workload"
)

// Result is one row of the report: one workload on one keyspace through
// one round of one nemesis.
type Result struct {
	Nemesis  string
	Workload string
	Keyspace string
	Mode     string
	// Ops is how many operations the clients ran; Checked how many
	// operations (register), elements (set) or items (flash sale) the
	// checker judged.
	Ops, Checked int
	// Violations describe every broken promise: a history that is not
	// linearizable, an acknowledged write lost on a keyspace that
	// promises to keep it, a phone sold twice, a write told Unavailable
	// that happened.
	Violations []string
	// Lost counts acknowledged writes that are gone: set elements whose
	// add was acknowledged and that are missing, phones whose
	// acknowledged buyer does not own them.
	Lost int
	// LWWLost counts acknowledged deletes of the set that last-writer-
	// wins undid in an eventual keyspace (an add with a later version won):
	// measured and reported, not a violation, as Dynamo-style stores
	// promise no more.
	LWWLost int
	// Faults is how many faults the nemesis injected; Unavailable the
	// longest time from one of them to the first write that was sent
	// after it and succeeded, in this keyspace (-1 if none did).
	Faults      int
	Unavailable time.Duration
}

// checkRegisters checks the register history of each linearizable target
// with porcupine, one keyspace at a time.
func checkRegisters(rec *recorder, targets []Target, timeout time.Duration) map[string]*Result {
	out := map[string]*Result{}
	all := rec.hist.Operations()
	for _, t := range targets {
		if !t.Linearizable() {
			continue
		}
		var ops []porcupine.Operation
		for _, op := range all {
			if strings.HasPrefix(op.Input.(sim.KVInput).Key, t.Keyspace+"/") {
				ops = append(ops, op)
			}
		}
		res := &Result{Workload: Register, Keyspace: t.Keyspace, Mode: t.Mode, Checked: len(ops)}
		switch porcupine.CheckOperationsTimeout(sim.KVModel(), ops, timeout) {
		case porcupine.Illegal:
			res.Violations = append(res.Violations, fmt.Sprintf("the register history of %d operations is not linearizable", len(ops)))
		case porcupine.Unknown:
			res.Violations = append(res.Violations, fmt.Sprintf("the linearizability check of %d operations timed out after %v", len(ops), timeout))
		}
		out[t.Keyspace] = res
	}
	return out
}

// readFinal reads key until a node answers (present or absent), for up to
// a minute: the cluster was healed before the checks, but a range may
// still be electing a leader.
func readFinal(ctx context.Context, cl *client.Client, ks, key string) (value string, found bool, err error) {
	deadline := time.Now().Add(time.Minute)
	for {
		kv, err := cl.Get(ctx, ks, []byte(key), client.Quorum{})
		switch {
		case err == nil:
			return string(kv.Value), true, nil
		case errors.Is(err, client.ErrNotFound):
			return "", false, nil
		case time.Now().After(deadline):
			return "", false, fmt.Errorf("reading %s/%s after the round: %w", ks, key, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// newResults are the empty results of workload wl, by keyspace.
func newResults(targets []Target, wl string) map[string]*Result {
	out := map[string]*Result{}
	for _, t := range targets {
		out[t.Keyspace] = &Result{Workload: wl, Keyspace: t.Keyspace, Mode: t.Mode}
	}
	return out
}

// sortedValues copies m's values, in the order of its keys, under rec's
// lock (m is one of rec's maps).
func sortedValues[T any](rec *recorder, m map[string]T) []T {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	out := make([]T, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, m[k])
	}
	return out
}

// checkSet reads back every element the set workload touched: an add
// acknowledged (and not deleted) must be there; an add told Unavailable
// must not; an acknowledged delete must have removed it.
func checkSet(ctx context.Context, cl *client.Client, rec *recorder, targets []Target) (map[string]*Result, error) {
	out := newResults(targets, Set)
	for _, e := range sortedValues(rec, rec.mu.set) {
		res := out[e.target.Keyspace]
		_, found, err := readFinal(ctx, cl, e.target.Keyspace, e.key)
		if err != nil {
			return nil, err
		}
		res.Checked++
		switch {
		case e.add == workload.Failed && found:
			res.Violations = append(res.Violations, fmt.Sprintf("%s: the add was told nothing was written (%v), and the element is there", e.key, e.addErr))
		case e.add == workload.Done && (!e.deleted || e.del == workload.Failed) && !found:
			res.Lost++
			res.Violations = append(res.Violations, fmt.Sprintf("%s: the add was acknowledged, and the element is gone", e.key))
		case e.add == workload.Done && e.deleted && e.del == workload.Done && found:
			if e.target.Linearizable() {
				res.Violations = append(res.Violations, fmt.Sprintf("%s: the delete was acknowledged after the add, and the element is back", e.key))
			} else {
				res.LWWLost++
			}
		}
	}
	return out, nil
}

// checkSale reads every phone's owner: at most one buyer was told it
// bought a phone, and the owner is that buyer (or one who never learned
// the outcome, if none was told).
func checkSale(ctx context.Context, cl *client.Client, rec *recorder, targets []Target) (map[string]*Result, error) {
	out := newResults(targets, Sale)
	for _, it := range sortedValues(rec, rec.mu.items) {
		res := out[it.target.Keyspace]
		owner, found, err := readFinal(ctx, cl, it.target.Keyspace, it.key)
		if err != nil {
			return nil, err
		}
		res.Checked++
		switch {
		case len(it.won) > 1:
			res.Violations = append(res.Violations, fmt.Sprintf("%s: sold %d times, to %v; the owner is %q", it.key, len(it.won), it.won, owner))
		case len(it.won) == 1 && (!found || owner != it.won[0]):
			res.Lost++
			res.Violations = append(res.Violations, fmt.Sprintf("%s: sold to %s, and the owner is %q (found %t)", it.key, it.won[0], owner, found))
		case len(it.won) == 0 && found && !slices.Contains(it.unknown, owner):
			res.Violations = append(res.Violations, fmt.Sprintf("%s: owned by %q, who was never told it bought it nor left without an answer (told it lost: %t; told nothing was written: %q)",
				it.key, owner, slices.Contains(it.lost, owner), it.failed[owner]))
		}
	}
	return out, nil
}

// unavailability is, for each fault injected at the given times, the
// wait from it to the end of the first successful write sent after it;
// -1 for a fault that saw no such write before the round ended.
func unavailability(writes []span, faults []time.Duration) []time.Duration {
	out := make([]time.Duration, len(faults))
	for i, at := range faults {
		first := time.Duration(-1)
		for _, w := range writes {
			if w.call >= at && (first < 0 || w.ret < first) {
				first = w.ret
			}
		}
		out[i] = -1
		if first >= 0 {
			out[i] = first - at
		}
	}
	return out
}

// worst is the longest of waits, -1 if one of them never ended.
func worst(waits []time.Duration) time.Duration {
	w := time.Duration(0)
	for _, d := range waits {
		if d < 0 {
			return -1
		}
		w = max(w, d)
	}
	return w
}
