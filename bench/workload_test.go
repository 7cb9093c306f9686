package bench

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
)

func TestValidate(t *testing.T) {
	ok := Workload{Keyspace: ev3}.WithDefaults()
	if err := ok.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	geometry := ev3
	geometry.W, geometry.R = 0, 0
	for _, tc := range []struct {
		name string
		edit func(w *Workload)
		knob string
		want string // in the message
	}{
		{"no keyspace", func(w *Workload) { w.Keyspace.Name = "" }, "keyspace", "a keyspace name"},
		{"bad mode", func(w *Workload) { w.Keyspace.Mode = "dynamo" }, "mode", "raft, paxos or eventual"},
		{"no replicas", func(w *Workload) { w.Keyspace.Replicas = 0 }, "replicas", "1 to 24"},
		{"no clients", func(w *Workload) { w.Clients = -1 }, "clients", "1 to 1024"},
		{"too many clients", func(w *Workload) { w.Clients = 1025 }, "clients", "1 to 1024"},
		{"negative duration", func(w *Workload) { w.Duration = -time.Second }, "duration", "more than 0"},
		{"endless", func(w *Workload) { w.Duration = 2 * time.Hour }, "duration", "at most 1h0m0s"},
		{"negative ops", func(w *Workload) { w.MaxOps = -1 }, "ops", "0 (no bound"},
		{"negative rate", func(w *Workload) { w.Rate = -1 }, "rate", "0 (closed loop) to 1000000 requests per second"},
		{"rate over the bound", func(w *Workload) { w.Rate = MaxRate + 1 }, "rate", "to 1000000"},
		{"rate NaN", func(w *Workload) { w.Rate = math.NaN() }, "rate", "to 1000000"},
		{"rate infinite", func(w *Workload) { w.Rate = math.Inf(1) }, "rate", "to 1000000"},
		{"no keys", func(w *Workload) { w.Keys = -5 }, "keys", "1 to 1000000"},
		{"tiny values", func(w *Workload) { w.ValueSize = 8 }, "value-size", "16 (room for the tag"},
		{"huge values", func(w *Workload) { w.ValueSize = 1<<20 + 1 }, "value-size", "1048576 (the server's 1 MiB value limit)"},
		{"reads over 1", func(w *Workload) { w.ReadFraction = 1.5 }, "reads", "from 0 to 1"},
		{"reads NaN", func(w *Workload) { w.ReadFraction = math.NaN() }, "reads", "from 0 to 1"},
		{"negative cas", func(w *Workload) { w.CASFraction = -0.1 }, "cas", "from 0 to 1"},
		{"reads and cas over 1", func(w *Workload) { w.ReadFraction, w.CASFraction = 0.7, 0.5 }, "cas", "at most 0.3"},
		{"no timeout", func(w *Workload) { w.Timeout = -1 }, "timeout", "positive"},
		{"w over n", func(w *Workload) { w.Quorum = client.Quorum{W: 4, R: 1} }, "w", "1 to the 3 replicas"},
		{"r over n", func(w *Workload) { w.Quorum = client.Quorum{W: 1, R: 4} }, "r", "1 to the 3 replicas"},
		{"named size", func(w *Workload) { w.Quorum = client.Quorum{W: client.SizeAll} }, "w", "1 to the 3 replicas"},
		{"w in raft", func(w *Workload) { w.Keyspace = raft3; w.Quorum = client.Quorum{W: 1} }, "w", "apply to eventual keyspaces, and r3 is raft"},
		{"r in raft", func(w *Workload) { w.Keyspace = raft3; w.Quorum = client.Quorum{R: 2} }, "r", "apply to eventual keyspaces"},
		{"w with a geometry", func(w *Workload) { w.Keyspace = geometry; w.Quorum = client.Quorum{W: 1} }, "w", "geometry defines"},
	} {
		w := ok
		tc.edit(&w)
		err := w.Validate()
		var ke *KnobError
		if !errors.As(err, &ke) || ke.Knob != tc.knob || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want knob %s saying %q", tc.name, err, tc.knob, tc.want)
		}
	}
	for _, edit := range []func(w *Workload){
		func(w *Workload) { w.Quorum = client.Quorum{W: 1, R: 3} },
		func(w *Workload) { w.Quorum = client.Quorum{W: 3} },
		func(w *Workload) { w.ReadFraction, w.CASFraction = 0.5, 0.5 },
		func(w *Workload) { w.ReadFraction, w.ValueSize = 0, MaxValueBytes },
		func(w *Workload) { w.Keyspace = raft3 },
		func(w *Workload) { w.Rate = MaxRate },
		func(w *Workload) { w.Rate = 0.5 },
	} {
		w := ok
		edit(&w)
		if err := w.Validate(); err != nil {
			t.Errorf("%+v refused: %v", w, err)
		}
	}
}

func TestDescribe(t *testing.T) {
	w := Workload{Keyspace: raft3}.WithDefaults()
	if got := w.Describe(); got != "10s, 16 clients, 1000 keys" {
		t.Errorf("closed loop: %q", got)
	}
	w.Rate = 2500.5
	if got := w.Describe(); got != "10s at 2500.5 ops/s, at most 16 in flight, 1000 keys" {
		t.Errorf("open loop: %q", got)
	}
}

func TestWithDefaults(t *testing.T) {
	w := Workload{Clients: 3, ReadFraction: 0}.WithDefaults()
	if w.Clients != 3 || w.Keys != DefaultKeys || w.ValueSize != DefaultValueSize || w.Duration != DefaultDuration ||
		w.Timeout != DefaultTimeout || w.KeyPrefix != DefaultKeyPrefix || w.ReadFraction != 0 {
		t.Fatalf("got %+v", w)
	}
}
