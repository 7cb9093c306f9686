package bench

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	v1 "github.com/quorumkv/quorumkv/api/quorumkv/v1"
	"github.com/quorumkv/quorumkv/client"
)

// Admin is what a sweep needs to create and drop its keyspaces;
// *client.Client has it.
type Admin interface {
	CreateKeyspace(ctx context.Context, ks *v1.Keyspace) (*v1.Keyspace, error)
	DropKeyspace(ctx context.Context, name string) error
}

// Sweep compares the modes on one workload: it creates a raft, a paxos
// and an eventual keyspace of Replicas replicas (majority geometry),
// runs the workload once on each of the first two and once per (W, R)
// pair on the eventual one, and drops each keyspace when its runs are
// done, also when a run fails or ctx is cancelled, unless Keep is set.
//
// The eventual keyspace keeps the defaults W = R = N/2+1, which satisfy
// W+R > N as the server demands of a keyspace; the pairs are per-request
// overrides, which may go lower. Each pair writes keys of its own
// (prefix wWrR/), so that no pair reads another's writes.
type Sweep struct {
	// Replicas is N of every keyspace, 1 to MaxReplicas.
	Replicas int
	// Ranges is the ranges of every keyspace, 1 to MaxRanges.
	Ranges int
	// Pairs are the (W, R) settings of the eventual runs, each from 1 to
	// Replicas; DefaultPairs gives the usual three.
	Pairs []client.Quorum
	// Suffix names the keyspaces bench-raft-SUFFIX, bench-paxos-SUFFIX and
	// bench-ev-SUFFIX: 1 to 16 of [a-z0-9]. Pick it at random, so that two
	// sweeps on one cluster do not meet.
	Suffix string
	// Keep leaves the keyspaces in place, to look at after the sweep.
	Keep bool
	// Rates, if any, runs every setting once per rate (Workload.Rate), in
	// the order given, in place of Workload.Rate; none runs each setting
	// once at Workload.Rate. Each rate adds a run of Duration per setting.
	Rates []float64
	// Workload is the template of every run; Keyspace, Quorum, Rate (with
	// Rates) and (for the eventual runs) KeyPrefix are set per run.
	Workload Workload
	// Progress, if set, is told what the sweep does as it does it.
	Progress func(msg string)
}

// MaxRanges is the server's bound on a keyspace's ranges.
const MaxRanges = 4096

// minDropTimeout bounds the drop of a keyspace from below: a drop goes
// through the catalog's leader and waits for every replica's removal to
// be decided, which can outlast a short request timeout.
const minDropTimeout = 10 * time.Second

var suffixRE = regexp.MustCompile(`^[a-z0-9]{1,16}$`)

// DefaultPairs are the (W, R) settings swept by default for N replicas:
// (1, 1), the fastest, which can miss acknowledged writes; (N/2+1, N/2+1),
// majorities, which cannot; and (1, N), cheap writes and reads of every
// replica, which cannot either. Duplicates (small N) are left out.
func DefaultPairs(n int) []client.Quorum {
	var pairs []client.Quorum
	for _, q := range []client.Quorum{{W: 1, R: 1}, {W: n/2 + 1, R: n/2 + 1}, {W: 1, R: n}} {
		dup := false
		for _, p := range pairs {
			dup = dup || p == q
		}
		if !dup {
			pairs = append(pairs, q)
		}
	}
	return pairs
}

// Validate checks the sweep and its workload template.
func (s Sweep) Validate() error {
	switch {
	case s.Replicas < 1 || s.Replicas > MaxReplicas:
		return &KnobError{"replicas", s.Replicas, fmt.Sprintf("1 to %d", MaxReplicas)}
	case s.Ranges < 1 || s.Ranges > MaxRanges:
		return &KnobError{"ranges", s.Ranges, fmt.Sprintf("1 to %d", MaxRanges)}
	case len(s.Pairs) == 0:
		return &KnobError{"wr", `""`, "at least one W,R pair"}
	case !suffixRE.MatchString(s.Suffix):
		return &KnobError{"suffix", fmt.Sprintf("%q", s.Suffix), "1 to 16 of [a-z0-9]"}
	}
	for _, q := range s.Pairs {
		if q.W < 1 || q.W > s.Replicas || q.R < 1 || q.R > s.Replicas {
			return &KnobError{"wr", fmt.Sprintf("%d,%d", q.W, q.R), fmt.Sprintf("W and R from 1 to the %d replicas (--replicas)", s.Replicas)}
		}
	}
	// The template, as the eventual runs will use it.
	w := s.Workload
	w.Keyspace = Keyspace{Name: s.keyspaceName(ModeEventual), Mode: ModeEventual, Replicas: s.Replicas, W: s.Replicas/2 + 1, R: s.Replicas/2 + 1}
	w.Quorum = s.Pairs[0]
	for _, rate := range s.rates() {
		w.Rate = rate
		if err := w.WithDefaults().Validate(); err != nil {
			return err
		}
	}
	return nil
}

// rates are the Workload.Rate of each setting's runs.
func (s Sweep) rates() []float64 {
	if len(s.Rates) == 0 {
		return []float64{s.Workload.Rate}
	}
	return s.Rates
}

func (s Sweep) keyspaceName(mode string) string {
	if mode == ModeEventual {
		mode = "ev"
	}
	return "bench-" + mode + "-" + s.Suffix
}

var modeProto = map[string]v1.Mode{ModeRaft: v1.Mode_MODE_RAFT, ModePaxos: v1.Mode_MODE_PAXOS, ModeEventual: v1.Mode_MODE_EVENTUAL}

// Run runs the sweep and returns a result per run, in order: raft,
// paxos, then eventual per pair, each at every rate in turn. On an error it returns the results so
// far with it; the keyspaces are dropped all the same (unless Keep).
func (s Sweep) Run(ctx context.Context, admin Admin, kvs []KV) ([]Result, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	var results []Result
	for _, m := range []struct {
		mode  string
		pairs []client.Quorum
	}{
		{ModeRaft, []client.Quorum{{}}},
		{ModePaxos, []client.Quorum{{}}},
		{ModeEventual, s.Pairs},
	} {
		rs, err := s.runMode(ctx, admin, kvs, m.mode, m.pairs)
		results = append(results, rs...)
		if err != nil {
			return results, err
		}
	}
	return results, nil
}

// runMode creates the mode's keyspace, runs the workload once per pair,
// and drops the keyspace (unless Keep) however the runs ended.
func (s Sweep) runMode(ctx context.Context, admin Admin, kvs []KV, mode string, pairs []client.Quorum) (results []Result, err error) {
	name := s.keyspaceName(mode)
	s.progress("creating keyspace %s (%s, %d replicas, %d ranges)", name, mode, s.Replicas, s.Ranges)
	created, err := admin.CreateKeyspace(ctx, &v1.Keyspace{
		Name: name, Mode: modeProto[mode], Replicas: uint32(s.Replicas), Ranges: uint32(s.Ranges),
	})
	if err != nil {
		return nil, fmt.Errorf("bench: create keyspace %s: %w", name, err)
	}
	defer func() {
		if s.Keep {
			s.progress("keeping keyspace %s", name)
			return
		}
		err = errors.Join(err, s.drop(ctx, admin, name))
	}()
	ks := Keyspace{Name: name, Mode: mode, Replicas: int(created.GetReplicas()), W: int(created.GetW()), R: int(created.GetR())}
	for _, q := range pairs {
		for _, rate := range s.rates() {
			w := s.Workload
			w.Keyspace, w.Quorum, w.Rate = ks, q, rate
			what := fmt.Sprintf("%s N=%d", mode, ks.Replicas)
			if mode == ModeEventual {
				w.KeyPrefix = fmt.Sprintf("w%dr%d/", q.W, q.R)
				what += fmt.Sprintf(" W=%d R=%d", q.W, q.R)
			}
			w = w.WithDefaults()
			s.progress("running %s: %s", what, w.Describe())
			r, err := Run(ctx, w, kvs)
			if err != nil {
				return results, err
			}
			results = append(results, r)
		}
	}
	return results, nil
}

// drop removes the keyspace even when ctx was cancelled (Ctrl-C): the
// sweep made it and must not leave it behind.
func (s Sweep) drop(ctx context.Context, admin Admin, name string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), max(s.Workload.WithDefaults().Timeout, minDropTimeout))
	defer cancel()
	if err := admin.DropKeyspace(ctx, name); err != nil {
		return fmt.Errorf("bench: drop keyspace %s (drop it by hand: kvctl keyspace drop %s): %w", name, name, err)
	}
	s.progress("dropped keyspace %s", name)
	return nil
}

func (s Sweep) progress(format string, args ...any) {
	if s.Progress != nil {
		s.Progress(fmt.Sprintf(format, args...))
	}
}
