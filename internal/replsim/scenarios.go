package replsim

import (
	"encoding/json"
	"fmt"

	"github.com/quorumkv/quorumkv/internal/sim"
)

// Scenarios are the cluster shapes every protocol runs in the simulator,
// with all the nemesis's faults (drops, duplicates, reordering, every
// partition shape, crashes that lose unsynced writes, restarts), crashes
// right after votes (promises) and acknowledgements (acceptances), leaders
// killed, nodes paused, and snapshots: majorities of 3 and 5, a 3x3 grid,
// three zones of two, five weighted voters, and a reconfiguration run
// (ReconfigTargets) whose leaders also crash right after applying a
// configuration change. All but the majorities (on which the canaries are
// hunted) also have their leaders asked to hand over leadership.
func Scenarios() []Scenario {
	base := Scenario{
		CrashAfterVote: 0.05, CrashAfterAck: 0.002, KillLeader: true, Pause: true, SnapshotEvery: 40,
	}
	with := func(name string, m Membership) Scenario {
		sc := base
		sc.Name, sc.Init = name, m
		return sc
	}
	transferring := func(sc Scenario) Scenario {
		sc.Transfer = true
		return sc
	}
	reconf := with("reconfig", Majority(1, 2, 3))
	reconf.Nodes = []uint64{1, 2, 3, 4, 5, 6}
	reconf.Reconfig = ReconfigTargets()
	reconf.CrashAfterConfig = 0.3
	return []Scenario{
		with("majority3", Majority(1, 2, 3)),
		with("majority5", Majority(1, 2, 3, 4, 5)),
		transferring(with("grid3x3", Grid3x3())),
		transferring(with("zones3x2", Zones3x2())),
		transferring(with("weighted5", Weighted5())),
		transferring(reconf),
	}
}

// ReconfigTargets grow 3 voters to 5, change the geometry to zones and to
// weighted, replace every voter, and shrink back.
func ReconfigTargets() []Membership {
	return []Membership{
		Majority(1, 2, 3, 4, 5),
		Zones3x2(),
		Weighted5(),
		Majority(4, 5, 6),
		Majority(1, 2, 3),
	}
}

// PutJSON writes v under key on the disk, as JSON (adapters keep their
// cores' persistent state this way).
func PutJSON(d *sim.Disk, key string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	d.Set(key, b)
}

// The disk layout both adapters (raftcore, paxoscore) keep a core in, all
// JSON: KeyHardState the hard state, KeySnapshot the latest snapshot, and
// EntryKey(i) the entry at index or slot i, under KeyEntry.
const (
	KeyHardState = "hs"
	KeySnapshot  = "snap"
	KeyEntry     = "e/"
)

// EntryKey is the key of the entry at index or slot i; keys sort as i.
func EntryKey(i uint64) string { return fmt.Sprintf("%s%016x", KeyEntry, i) }

// LoadJSON reads key into v and reports whether it was there.
func LoadJSON(d *sim.Disk, key string, v any) bool {
	b, ok := d.Get(key)
	if !ok {
		return false
	}
	if err := json.Unmarshal(b, v); err != nil {
		panic(fmt.Sprintf("disk key %s: %v", key, err))
	}
	return true
}
