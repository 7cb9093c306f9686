package sim

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Fault is a kind of failure the nemesis can inject.
type Fault uint8

// Faults. Partition faults (Isolate to Flap) replace one another: the
// nemesis keeps at most one partition of its own active, so a trace reads
// as a sequence of network shapes.
const (
	FaultIsolate Fault = iota + 1 // one node cut off, both ways
	FaultSplit                    // random minority cut from the majority
	FaultBridge                   // two halves joined only by one node (>= 3 nodes)
	FaultOneWay                   // one node cannot send, or cannot receive
	FaultRing                     // MajorityRing over a shuffled order (>= 4 nodes)
	FaultFlap                     // one of the shapes above, healing and re-forming
	FaultCrash                    // crash a node, restart it when the fault ends
	FaultLoss                     // one node's links (both ways) drop LossRate of messages
)

var faultNames = [...]string{
	FaultIsolate: "isolate", FaultSplit: "split", FaultBridge: "bridge",
	FaultOneWay: "oneway", FaultRing: "ring", FaultFlap: "flap",
	FaultCrash: "crash", FaultLoss: "loss",
}

func (f Fault) String() string {
	if int(f) < len(faultNames) && faultNames[f] != "" {
		return faultNames[f]
	}
	return fmt.Sprintf("Fault(%d)", uint8(f))
}

// AllFaults returns every fault kind.
func AllFaults() []Fault {
	return []Fault{FaultIsolate, FaultSplit, FaultBridge, FaultOneWay, FaultRing, FaultFlap, FaultCrash, FaultLoss}
}

// PartitionFaults returns the faults that only partition the network.
func PartitionFaults() []Fault {
	return []Fault{FaultIsolate, FaultSplit, FaultBridge, FaultOneWay, FaultRing, FaultFlap}
}

// NemesisConfig says which faults a nemesis injects, where and how often.
// Zero durations and counts take the defaults documented per field.
type NemesisConfig struct {
	// Nodes are the nodes partitions are drawn over. Include the clients
	// if the protocol's clients talk to replicas over the network, or
	// partitions between replicas alone may never matter.
	Nodes []NodeID
	// Crashable are the nodes FaultCrash and FaultLoss may pick. Empty
	// means Nodes.
	Crashable []NodeID
	// Faults are drawn from uniformly. Empty means AllFaults().
	Faults []Fault
	// MinGap and MaxGap bound the wait before each new fault. Default
	// 50ms–500ms: several faults per virtual second, each lasting a few
	// election timeouts of a typical test configuration.
	MinGap, MaxGap time.Duration
	// MinDuration and MaxDuration bound how long a fault lasts. Default
	// 100ms–1s.
	MinDuration, MaxDuration time.Duration
	// MinFlap and MaxFlap bound each on/off period of FaultFlap. Default
	// 10ms–100ms: around one election timeout, where flapping hurts most.
	MinFlap, MaxFlap time.Duration
	// MaxCrashed is how many Crashable nodes may be down at once. Default
	// a minority, (len(Crashable)-1)/2 but at least 1, so a majority quorum
	// system can still make progress; set it higher to test safety with
	// most nodes down.
	MaxCrashed int
	// LossRate is the drop probability FaultLoss puts on its victim's
	// links. Default 0.5.
	LossRate float64
}

// Validate reports configuration errors.
func (c NemesisConfig) Validate() error {
	if len(c.Nodes) == 0 {
		return errors.New("sim: nemesis needs Nodes")
	}
	for _, f := range c.Faults {
		if f < FaultIsolate || f > FaultLoss {
			return fmt.Errorf("sim: unknown nemesis fault %d", f)
		}
	}
	if c.MaxGap < c.MinGap || c.MaxDuration < c.MinDuration || c.MaxFlap < c.MinFlap {
		return errors.New("sim: nemesis max durations must not be below their min")
	}
	if c.LossRate < 0 || c.LossRate > 1 {
		return fmt.Errorf("sim: nemesis LossRate %v outside [0, 1]", c.LossRate)
	}
	return nil
}

func (c NemesisConfig) withDefaults() NemesisConfig {
	if len(c.Crashable) == 0 {
		c.Crashable = c.Nodes
	}
	if len(c.Faults) == 0 {
		c.Faults = AllFaults()
	}
	if c.MinGap == 0 && c.MaxGap == 0 {
		c.MinGap, c.MaxGap = 50*time.Millisecond, 500*time.Millisecond
	}
	if c.MinDuration == 0 && c.MaxDuration == 0 {
		c.MinDuration, c.MaxDuration = 100*time.Millisecond, time.Second
	}
	if c.MinFlap == 0 && c.MaxFlap == 0 {
		c.MinFlap, c.MaxFlap = 10*time.Millisecond, 100*time.Millisecond
	}
	if c.MaxCrashed == 0 {
		c.MaxCrashed = max(1, (len(c.Crashable)-1)/2)
	}
	if c.LossRate == 0 {
		c.LossRate = 0.5
	}
	return c
}

// Nemesis injects random faults on a schedule drawn from the simulation's
// seed, until stopped.
type Nemesis struct {
	s       *Sim
	cfg     NemesisConfig
	stopped bool
	next    *Timer

	healPart func()            // the active partition or flap, if any
	partEnd  *Timer            // ends healPart
	crashed  map[NodeID]*Timer // nodes this nemesis crashed, with their restart timers
	loss     *lossFault
}

type lossFault struct {
	saved map[link]*LinkConfig // previous overrides; nil value: there was none
	order []link               // restore in a fixed order, for the trace
	end   *Timer
}

// StartNemesis starts injecting faults as cfg says. It panics if cfg is
// invalid (a bug in the test; see NemesisConfig.Validate). Stop it with
// Nemesis.Stop or end everything with Sim.Heal.
func (s *Sim) StartNemesis(cfg NemesisConfig) *Nemesis {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	nem := &Nemesis{s: s, cfg: cfg.withDefaults(), crashed: make(map[NodeID]*Timer)}
	s.nemeses = append(s.nemeses, nem)
	nem.schedule()
	return nem
}

func (nem *Nemesis) schedule() {
	nem.next = nem.s.After(randDuration(nem.s, nem.cfg.MinGap, nem.cfg.MaxGap), func() {
		nem.inject()
		nem.schedule()
	})
}

func (nem *Nemesis) duration() time.Duration {
	return randDuration(nem.s, nem.cfg.MinDuration, nem.cfg.MaxDuration)
}

func (nem *Nemesis) note(format string, args ...any) {
	nem.s.record(TraceEvent{Kind: EvNemesis, Text: fmt.Sprintf(format, args...)})
}

func (nem *Nemesis) inject() {
	f := nem.cfg.Faults[nem.s.rng.IntN(len(nem.cfg.Faults))]
	switch f {
	case FaultCrash:
		nem.crash()
	case FaultLoss:
		nem.lossy()
	case FaultFlap:
		shapes := []Fault{FaultIsolate, FaultSplit, FaultBridge, FaultOneWay, FaultRing}
		if p, ok := nem.shape(shapes[nem.s.rng.IntN(len(shapes))]); ok {
			nem.setPartition("flap", func() func() {
				return nem.s.net.Flap(p, nem.cfg.MinFlap, nem.cfg.MaxFlap).Stop
			})
		}
	default:
		if p, ok := nem.shape(f); ok {
			nem.setPartition("partition", func() func() { return nem.s.net.Partition(p) })
		}
	}
}

// setPartition replaces the nemesis's partition by the one start
// activates, ending it after a random duration. The old one heals first so
// the trace shows the shapes one after the other.
func (nem *Nemesis) setPartition(what string, start func() (heal func())) {
	nem.endPartition()
	nem.note("%s", what)
	nem.healPart = start()
	nem.partEnd = nem.s.After(nem.duration(), nem.endPartition)
}

func (nem *Nemesis) endPartition() {
	if nem.healPart == nil {
		return
	}
	nem.partEnd.Stop()
	nem.healPart()
	nem.healPart = nil
}

// shape draws a random partition of kind f over cfg.Nodes; ok is false if
// there are too few nodes for that shape.
func (nem *Nemesis) shape(f Fault) (Partition, bool) {
	rng := nem.s.rng
	nodes := slices.Clone(nem.cfg.Nodes)
	rng.Shuffle(len(nodes), func(i, j int) { nodes[i], nodes[j] = nodes[j], nodes[i] })
	n := len(nodes)
	switch f {
	case FaultIsolate:
		if n < 2 {
			return Partition{}, false
		}
		return Isolate(nodes, nodes[0]), true
	case FaultSplit:
		if n < 2 {
			return Partition{}, false
		}
		k := 1 + rng.IntN(max(1, n/2)) // minority size in [1, n/2]
		return Split(nodes[k:], nodes[:k]), true
	case FaultBridge:
		if n < 3 {
			return Partition{}, false
		}
		rest := nodes[1:]
		return Bridge(rest[:len(rest)/2], nodes[0], rest[len(rest)/2:]), true
	case FaultOneWay:
		if n < 2 {
			return Partition{}, false
		}
		if rng.IntN(2) == 0 {
			return CutOneWay(nodes[:1], nodes[1:]), true // victim cannot send
		}
		return CutOneWay(nodes[1:], nodes[:1]), true // victim cannot receive
	case FaultRing:
		if n < 4 {
			return Partition{}, false
		}
		return MajorityRing(nodes), true
	}
	return Partition{}, false
}

func (nem *Nemesis) crash() {
	if len(nem.crashed) >= nem.cfg.MaxCrashed {
		return
	}
	var candidates []NodeID
	for _, id := range nem.cfg.Crashable {
		if nem.s.Up(id) {
			candidates = append(candidates, id)
		}
	}
	if len(candidates) == 0 {
		return
	}
	id := candidates[nem.s.rng.IntN(len(candidates))]
	nem.note("crash n%d", id)
	nem.s.Crash(id)
	nem.crashed[id] = nem.s.After(nem.duration(), func() { nem.restart(id) })
}

func (nem *Nemesis) restart(id NodeID) {
	t, ok := nem.crashed[id]
	if !ok {
		return
	}
	t.Stop()
	delete(nem.crashed, id)
	if !nem.s.Up(id) { // the test may have restarted it already
		nem.s.Restart(id)
	}
}

func (nem *Nemesis) lossy() {
	if nem.loss != nil {
		return
	}
	victim := nem.cfg.Crashable[nem.s.rng.IntN(len(nem.cfg.Crashable))]
	nem.note("loss %.2f on n%d's links", nem.cfg.LossRate, victim)
	lf := &lossFault{saved: make(map[link]*LinkConfig)}
	net := nem.s.net
	for _, other := range nem.cfg.Nodes {
		if other == victim {
			continue
		}
		for _, l := range []link{{victim, other}, {other, victim}} {
			if old, ok := net.overrides[l]; ok {
				lf.saved[l] = &old
			} else {
				lf.saved[l] = nil
			}
			lf.order = append(lf.order, l)
			c := net.Link(l.from, l.to)
			c.DropRate = nem.cfg.LossRate
			net.SetLink(l.from, l.to, c)
		}
	}
	lf.end = nem.s.After(nem.duration(), nem.endLoss)
	nem.loss = lf
}

// endLoss puts back the link configurations the loss fault replaced. A
// test that changes those links while the fault is active has its change
// undone.
func (nem *Nemesis) endLoss() {
	lf := nem.loss
	if lf == nil {
		return
	}
	nem.loss = nil
	lf.end.Stop()
	for _, l := range lf.order {
		if old := lf.saved[l]; old != nil {
			nem.s.net.SetLink(l.from, l.to, *old)
		} else {
			nem.s.net.ResetLink(l.from, l.to)
		}
	}
}

// Stop stops injecting faults and ends the ones this nemesis started: its
// partition heals, its lossy links are restored and the nodes it crashed
// restart (in ID order).
func (nem *Nemesis) Stop() {
	if nem.stopped {
		return
	}
	nem.stopped = true
	nem.next.Stop()
	nem.note("stop")
	nem.endPartition()
	nem.endLoss()
	ids := make([]NodeID, 0, len(nem.crashed))
	for id := range nem.crashed {
		ids = append(ids, id)
	}
	slices.Sort(ids) // map order is random; the restart order must not be
	for _, id := range ids {
		nem.restart(id)
	}
	if i := slices.Index(nem.s.nemeses, nem); i >= 0 {
		nem.s.nemeses = slices.Delete(nem.s.nemeses, i, i+1)
	}
}
