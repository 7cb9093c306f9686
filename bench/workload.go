package bench

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	"github.com/quorumkv/quorumkv/client"
)

// KV is what the load generator needs of a client; *client.Client has it.
// Tests give it an in-memory store instead.
type KV interface {
	Put(ctx context.Context, keyspace string, key, value []byte, q client.Quorum) (string, error)
	Get(ctx context.Context, keyspace string, key []byte, q client.Quorum) (client.KeyValue, error)
	CompareAndSwap(ctx context.Context, keyspace string, key []byte, expect client.Expect, value []byte) (string, error)
}

// Clients returns one client per endpoint, for Run to spread requests
// over: the i-th tries endpoint i first and the others after it in turn,
// so a node that cannot serve moves its share to the next one instead of
// failing it. base holds the rest of their configuration: Timeout
// bounds each request, retries included; TLS, if set, reaches the nodes
// over TLS (kvd --certs-dir); User and Password log in.
func Clients(endpoints []string, base client.Config) ([]KV, error) {
	kvs := make([]KV, 0, len(endpoints))
	for i := range endpoints {
		cfg := base
		cfg.Endpoints = append(append([]string{}, endpoints[i:]...), endpoints[:i]...)
		cl, err := client.New(cfg)
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		kvs = append(kvs, cl)
	}
	return kvs, nil
}

// Keyspace modes, as kvctl names them.
const (
	ModeRaft     = "raft"
	ModePaxos    = "paxos"
	ModeEventual = "eventual"
)

// Keyspace is what a run needs to know of the keyspace it loads.
type Keyspace struct {
	Name string
	// Mode is ModeRaft, ModePaxos or ModeEventual.
	Mode string
	// Replicas is N, the replicas of each range.
	Replicas int
	// W and R are an eventual keyspace's default quorums: what a request
	// gets when it does not override them. Zero when the keyspace's
	// geometry defines its write and read sets (and then W and R cannot be
	// overridden), and in raft and paxos keyspaces.
	W, R int
}

// Limits of a workload. Each one bounds what a run holds in memory or
// asks of the cluster; kvctl's flags are checked against them.
const (
	// MaxClients bounds the concurrent clients of a run: each is a
	// goroutine with one request (of up to ValueSize bytes) in flight.
	MaxClients = 1024
	// MaxKeys bounds the keys of a run. Every key is written once before
	// the clock starts, so a million keys costs a million writes first.
	MaxKeys = 1_000_000
	// MinValueBytes is the unique tag every written value starts with.
	MinValueBytes = tagBytes
	// MaxValueBytes is the server's default value limit (SPEC.md
	// "Limits"): a larger value would be refused.
	MaxValueBytes = 1 << 20
	// MaxDuration bounds a run's load phase.
	MaxDuration = time.Hour
	// MaxReplicas is the server's bound on a keyspace's N (the quorum
	// proof enumerates subsets of at most this many voters).
	MaxReplicas = 24
	// MaxCheckedOps bounds the reads and acknowledged writes kept for the
	// staleness check (about 64 bytes each, so 64 MiB at most); a run
	// with more checks only those before the bound was reached and says
	// how many reads it checked.
	MaxCheckedOps = 1_000_000
	// MaxRate bounds an open-loop run's target, in requests per second
	// over all clients. Each scheduled request wakes a client goroutine at
	// its intended time; well before a million a second one process
	// cannot keep such a schedule, and the run would measure the load
	// generator (its late starts say so) rather than the cluster.
	MaxRate = 1_000_000
)

// Workload is one run: Clients closed-loop clients, each sending its next
// request once the previous one is answered, for Duration or until MaxOps
// requests were sent, whichever comes first. With Rate set the run is
// open-loop instead: requests are due at fixed times, Rate a second, and
// the Clients send them (see Rate).
type Workload struct {
	Keyspace Keyspace
	// Clients is the number of concurrent clients, 1 to MaxClients. In an
	// open-loop run it is the most requests in flight: a request due while
	// every client is busy waits for one, and its wait counts in its
	// latency. Too few for the rate and the cluster's latency (Little's
	// law: Rate x latency) turns the clients into the bottleneck, which
	// the run reports as late starts; too many costs a goroutine each.
	Clients int
	// Rate, if above 0, makes the run open-loop: Rate requests a second
	// over all clients (up to MaxRate), request i due at i/Rate seconds
	// after the load began, for Duration (or MaxOps requests). A request's
	// latency is measured from its due time, not from when a client got to
	// send it, so a cluster that stalls is charged for every request that
	// was due during the stall (no coordinated omission; LateAfter says
	// what the load generator's own timer may add). Each request's
	// Timeout also counts from its due time, as a caller's deadline would.
	// 0 is the closed loop.
	Rate float64
	// Duration is how long the load runs, after every key was written once.
	// Requests in flight at the end are waited for (at most Timeout).
	Duration time.Duration
	// MaxOps stops the run after this many requests in all; 0: no bound
	// but Duration.
	MaxOps int
	// Keys is the number of distinct keys, chosen uniformly.
	Keys int
	// KeyPrefix starts every key, so that runs sharing a keyspace (the
	// W/R pairs of a sweep) do not read each other's writes.
	KeyPrefix string
	// ValueSize is the size of every written value in bytes, MinValueBytes
	// to MaxValueBytes. Every value is unique: it starts with a tag naming
	// its client and sequence number.
	ValueSize int
	// ReadFraction and CASFraction are the shares of reads and of
	// compare-and-swaps among requests; the rest are puts.
	ReadFraction, CASFraction float64
	// Quorum overrides W and R for every put and get (eventual keyspaces
	// only): counts from 1 to N; zero keeps the keyspace's default.
	// Compare-and-swaps use the keyspace's quorums whatever this says.
	Quorum client.Quorum
	// Seed seeds the key and operation choices; client i uses the stream
	// (Seed, i), so one seed replays the same choices.
	Seed uint64
	// Timeout bounds each request, retries on other endpoints included.
	// Too low counts a slow moment as errors; too high lets a stuck
	// request hold the end of the run that long.
	Timeout time.Duration
	// MetricsEndpoints are the nodes whose /metrics are read for the
	// server's staleness counters (eventual keyspaces); empty skips that
	// measure. They should be the nodes requests go to: a read is counted
	// by the node that coordinated it.
	MetricsEndpoints []string
	// TLS, if set, reads those metrics over https with this configuration
	// (kvd --certs-dir).
	TLS *tls.Config
	// Settle is the wait after the load before the counters are read
	// again: a coordinator counts a read stale once the late answers are
	// in, after the read returned. Too short leaves late answers out (the
	// server's rate is then a lower bound); too long only slows a sweep.
	Settle time.Duration
	// Progress, if set, is called every ProgressInterval while the run
	// prefills and loads, from a goroutine of the run's, one call at a
	// time; never after Run returned.
	Progress func(Progress)
}

// Defaults, used where a Workload field is zero by WithDefaults.
const (
	DefaultClients   = 16
	DefaultDuration  = 10 * time.Second
	DefaultKeys      = 1000
	DefaultValueSize = 256
	DefaultTimeout   = 5 * time.Second
	// DefaultSettle: replicas on one network answer within milliseconds;
	// the replica timeout is 2s, so a slower answer is rare and left out.
	DefaultSettle = 500 * time.Millisecond
	// DefaultKeyPrefix keeps the run's keys apart from a user's.
	DefaultKeyPrefix = "bench/"
)

// WithDefaults returns w with zero fields set to the defaults (fractions
// and Seed stay as given: zero is a meaningful value for them).
func (w Workload) WithDefaults() Workload {
	set := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setD := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	set(&w.Clients, DefaultClients)
	set(&w.Keys, DefaultKeys)
	set(&w.ValueSize, DefaultValueSize)
	setD(&w.Duration, DefaultDuration)
	setD(&w.Timeout, DefaultTimeout)
	setD(&w.Settle, DefaultSettle)
	if w.KeyPrefix == "" {
		w.KeyPrefix = DefaultKeyPrefix
	}
	return w
}

// KnobError is a workload setting out of its bounds. Knob is named as
// kvctl's flag is, so that the CLI can point at the flag to fix.
type KnobError struct {
	Knob  string // "clients", "value-size", "w", ...
	Value any
	Want  string
}

func (e *KnobError) Error() string {
	return fmt.Sprintf("bench: %s %v: want %s", e.Knob, e.Value, e.Want)
}

// Validate checks every field and the rules between them. Call it on
// WithDefaults' result.
func (w Workload) Validate() error {
	ks := w.Keyspace
	switch {
	case ks.Name == "":
		return &KnobError{"keyspace", `""`, "a keyspace name"}
	case ks.Mode != ModeRaft && ks.Mode != ModePaxos && ks.Mode != ModeEventual:
		return &KnobError{"mode", ks.Mode, "raft, paxos or eventual"}
	case ks.Replicas < 1 || ks.Replicas > MaxReplicas:
		return &KnobError{"replicas", ks.Replicas, fmt.Sprintf("1 to %d", MaxReplicas)}
	case w.Clients < 1 || w.Clients > MaxClients:
		return &KnobError{"clients", w.Clients, fmt.Sprintf("1 to %d", MaxClients)}
	case w.Duration <= 0 || w.Duration > MaxDuration:
		return &KnobError{"duration", w.Duration, fmt.Sprintf("more than 0 and at most %v", MaxDuration)}
	case !(w.Rate >= 0 && w.Rate <= MaxRate): // NaN fails too
		return &KnobError{"rate", w.Rate, fmt.Sprintf("0 (closed loop) to %d requests per second", MaxRate)}
	case w.MaxOps < 0:
		return &KnobError{"ops", w.MaxOps, "0 (no bound but the duration) or more"}
	case w.Keys < 1 || w.Keys > MaxKeys:
		return &KnobError{"keys", w.Keys, fmt.Sprintf("1 to %d", MaxKeys)}
	case w.ValueSize < MinValueBytes || w.ValueSize > MaxValueBytes:
		return &KnobError{"value-size", w.ValueSize, fmt.Sprintf("%d (room for the tag that makes every value unique) to %d (the server's 1 MiB value limit)",
			MinValueBytes, MaxValueBytes)}
	case !(w.ReadFraction >= 0 && w.ReadFraction <= 1): // NaN fails too
		return &KnobError{"reads", w.ReadFraction, "a fraction from 0 to 1"}
	case !(w.CASFraction >= 0 && w.CASFraction <= 1):
		return &KnobError{"cas", w.CASFraction, "a fraction from 0 to 1"}
	case w.ReadFraction+w.CASFraction > 1:
		return &KnobError{"cas", w.CASFraction, fmt.Sprintf("at most %.6g, so that reads (%.6g) and compare-and-swaps add up to 1 at most",
			1-w.ReadFraction, w.ReadFraction)}
	case w.Timeout <= 0:
		return &KnobError{"timeout", w.Timeout, "a positive duration"}
	case w.Settle < 0:
		return &KnobError{"settle", w.Settle, "0 or more"}
	}
	return w.validateQuorum()
}

// validateQuorum: W and R are overridden only in eventual keyspaces whose
// W and R are sizes (majority or flexible geometry), and only to counts
// of replicas that exist.
func (w Workload) validateQuorum() error {
	ks, q := w.Keyspace, w.Quorum
	if q == (client.Quorum{}) {
		return nil
	}
	knob, v := "w", q.W
	if q.W == 0 {
		knob, v = "r", q.R
	}
	switch {
	case ks.Mode != ModeEventual:
		return &KnobError{knob, v, fmt.Sprintf("no override: W and R apply to eventual keyspaces, and %s is %s (its geometry decides)", ks.Name, ks.Mode)}
	case ks.W == 0:
		return &KnobError{knob, v, fmt.Sprintf("no override: keyspace %s's geometry defines its write and read sets", ks.Name)}
	}
	for _, c := range []struct {
		knob string
		v    int
	}{{"w", q.W}, {"r", q.R}} {
		if c.v < 0 || c.v > ks.Replicas {
			return &KnobError{c.knob, c.v, fmt.Sprintf("1 to the %d replicas of keyspace %s (0 keeps its default)", ks.Replicas, ks.Name)}
		}
	}
	return nil
}

// Describe says in a few words how the workload loads its keyspace:
// "10s, 16 clients, 1000 keys", or "10s at 2000 ops/s, at most 16 in
// flight, 1000 keys" for an open loop.
func (w Workload) Describe() string {
	if w.Rate > 0 {
		return fmt.Sprintf("%v at %g ops/s, at most %d in flight, %d keys", w.Duration, w.Rate, w.Clients, w.Keys)
	}
	return fmt.Sprintf("%v, %d clients, %d keys", w.Duration, w.Clients, w.Keys)
}

// effectiveQuorum is the W and R the run's puts and gets get: the
// overrides, or the keyspace's defaults. Zero in raft and paxos keyspaces.
func (w Workload) effectiveQuorum() (wq, rq int) {
	wq, rq = w.Quorum.W, w.Quorum.R
	if wq == 0 {
		wq = w.Keyspace.W
	}
	if rq == 0 {
		rq = w.Keyspace.R
	}
	return wq, rq
}
