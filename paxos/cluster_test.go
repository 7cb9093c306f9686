package paxos_test

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/quorumkv/quorumkv/paxos"
	"github.com/quorumkv/quorumkv/quorum"
)

// cluster is a small deterministic test network of Multi-Paxos nodes with
// an in-memory "disk" per node. Messages wait in one queue; the test
// decides which to deliver, drop or duplicate, so every interleaving is a
// choice from a seed or a script. A crash throws the RawNode away and
// restarts it from what it persisted, nothing more. It checks, as it goes:
//
//   - at most one value is chosen per slot: an observer counts persisted
//     acceptances per (slot, ballot) and knows a value chosen when a
//     phase-2 quorum holds it, whatever the nodes believe;
//   - delivered prefixes agree: every node delivers the same value in each
//     slot, in slot order, and that value is the chosen one.
type cluster struct {
	rng   *rand.Rand
	sys   quorum.System // the first configuration, for the observer
	alpha uint64
	// configs[s] is the configuration the observer saw chosen in slot s.
	configs map[uint64]quorum.System
	canary  paxos.Canary
	cfg     func(id uint64) paxos.Config
	// lease: the nodes serve reads from their leases (Config.ReadLease),
	// and the random steps include leadership transfers.
	lease bool
	// checkLeases checks after every step that no node holds a lease
	// while another leads at a higher ballot (checkLease): random runs
	// only, whose ticks are in lockstep, as leases assume; a script
	// ticks nodes one by one.
	checkLeases bool
	nodes       map[uint64]*testNode
	ids         []uint64
	queue       []paxos.Message
	// slow holds messages delayed far longer than the rest: stale ballots
	// arriving late are what the promise of an acceptor is for.
	slow []paxos.Message
	cut  map[[2]uint64]bool // cut[{a,b}]: messages a->b are lost
	// dead are nodes lost for good: crashed and never restarted.
	dead map[uint64]bool
	out  io.Writer // trace of events, nil for none

	accepts   map[slotBallot]map[uint64]bool
	acceptVal map[slotBallot]string
	chosen    map[uint64]string // the observer's chosen values
	delivered map[uint64]string // the value first delivered per slot
	err       error
	proposals int
	// readFloor[ctx] is the highest slot any node had delivered when the
	// read ctx was requested: a linearizable read must see at least that.
	readFloor map[string]uint64
	reads     int
	served    int
}

type slotBallot struct {
	slot   uint64
	ballot paxos.Ballot
}

type testNode struct {
	id      uint64
	rn      *paxos.RawNode // nil while down
	disk    paxos.PersistentState
	applied uint64
	hash    uint64 // running hash of the delivered values, for snapshots
	reads   []paxos.ReadState
}

func newCluster(seed uint64, m paxos.Membership, c paxos.Canary, tweak func(*paxos.Config)) *cluster {
	sys, err := m.System()
	if err != nil {
		panic(err)
	}
	cl := &cluster{
		rng: rand.New(rand.NewPCG(seed, 0x5eed)), sys: sys, canary: c,
		nodes: map[uint64]*testNode{}, cut: map[[2]uint64]bool{}, dead: map[uint64]bool{},
		accepts: map[slotBallot]map[uint64]bool{}, acceptVal: map[slotBallot]string{},
		chosen: map[uint64]string{}, delivered: map[uint64]string{},
		configs: map[uint64]quorum.System{}, readFloor: map[string]uint64{},
	}
	cl.cfg = func(id uint64) paxos.Config {
		cfg := paxos.Config{ID: id, Rand: rand.New(rand.NewPCG(seed, id)), ElectionTicks: 10, HeartbeatTicks: 2, MaxOpenSlots: 4}
		if tweak != nil {
			tweak(&cfg)
		}
		return paxos.WithCanary(cfg, c)
	}
	cl.alpha = uint64(cl.cfg(1).MaxOpenSlots)
	cl.lease = cl.cfg(1).ReadLease
	for _, n := range m.Voters {
		cl.addNode(n.ID, paxos.Bootstrap(m))
	}
	return cl
}

func (cl *cluster) addNode(id uint64, disk paxos.PersistentState) {
	n := &testNode{id: id, disk: disk}
	cl.nodes[id] = n
	cl.ids = append(cl.ids, id)
	slices.Sort(cl.ids)
	cl.start(n)
}

func (cl *cluster) start(n *testNode) {
	cfg := cl.cfg(n.id)
	cfg.Applied = n.disk.Snapshot.Slot // the application restarts from the snapshot
	n.applied, n.hash = n.disk.Snapshot.Slot, snapHash(n.disk.Snapshot)
	rn, err := paxos.NewRawNode(cfg, clone(n.disk))
	if err != nil {
		panic(err)
	}
	n.rn = rn
}

// clone copies a disk image so that the node and the disk share nothing.
func clone(ps paxos.PersistentState) paxos.PersistentState {
	ps.Entries = slices.Clone(ps.Entries)
	return ps
}

func snapHash(s paxos.Snapshot) uint64 {
	if len(s.Data) == 0 {
		return 0
	}
	var h uint64
	fmt.Sscan(string(s.Data), &h)
	return h
}

func (cl *cluster) logf(format string, args ...any) {
	if cl.out != nil {
		fmt.Fprintf(cl.out, format+"\n", args...)
	}
}

func (cl *cluster) fail(format string, args ...any) {
	if cl.err == nil {
		cl.err = fmt.Errorf(format, args...)
	}
}

// process hands out every node's Ready until none has any: persist, then
// send, then apply, then Advance, as the Ready contract says.
func (cl *cluster) process() {
	if cl.checkLeases {
		defer cl.checkLease()
	}
	for again := true; again; {
		again = false
		for _, id := range cl.ids {
			n := cl.nodes[id]
			if n.rn == nil || !n.rn.HasReady() {
				continue
			}
			again = true
			cl.handleReady(n, n.rn.Ready())
			if n.rn.NeedsSnapshot() {
				cl.compact(id) // a joiner waits for a snapshot
			}
		}
	}
}

func (cl *cluster) handleReady(n *testNode, rd paxos.Ready) {
	n.disk.HardState = rd.HardState
	if rd.Snapshot != nil {
		n.disk.Snapshot = *rd.Snapshot
		n.disk.Entries = slices.DeleteFunc(n.disk.Entries, func(e paxos.Entry) bool { return e.Slot <= rd.Snapshot.Slot })
		if want := cl.prefixHash(rd.Snapshot.Slot); snapHash(*rd.Snapshot) != want {
			cl.fail("node %d installed a snapshot at %d that disagrees with the chosen prefix", n.id, rd.Snapshot.Slot)
		}
		n.applied, n.hash = rd.Snapshot.Slot, snapHash(*rd.Snapshot)
		cl.logf("%d: install snapshot at slot %d", n.id, rd.Snapshot.Slot)
	}
	for _, e := range rd.Entries {
		n.disk.Entries = slices.DeleteFunc(n.disk.Entries, func(o paxos.Entry) bool { return o.Slot == e.Slot })
		n.disk.Entries = append(n.disk.Entries, e)
		cl.observeAccept(n.id, e)
	}
	for _, m := range rd.Messages {
		cl.logf("  %v", m)
		cl.queue = append(cl.queue, m)
	}
	for _, e := range rd.CommittedEntries {
		cl.deliver(n, e)
	}
	for _, rs := range rd.ReadStates {
		cl.logf("%d: read %q may be served at slot %d", n.id, rs.Context, rs.Index)
		n.reads = append(n.reads, rs)
	}
	n.rn.Advance(rd)
	cl.serveReads(n)
}

// checkLease fails the run if a node holds a lease (it would serve a read
// from it now) while another node leads at a higher ballot: the promise a
// lease counts on is that no rival completes phase 1 before it ends. It
// catches a broken promise whether or not a read happens to be served in
// the window.
func (cl *cluster) checkLease() {
	var top paxos.Ballot
	var topID uint64
	for _, id := range cl.ids {
		if n := cl.nodes[id]; n.rn != nil {
			if st := n.rn.Status(); st.Role == paxos.Leader && top.Less(st.Promised) {
				top, topID = st.Promised, id
			}
		}
	}
	for _, id := range cl.ids {
		if n := cl.nodes[id]; n.rn != nil && n.rn.HoldsLease() {
			if b := n.rn.Status().Promised; b.Less(top) {
				cl.fail("node %d holds a lease at ballot %v while node %d leads at %v", id, b, topID, top)
			}
		}
	}
}

// read asks node id for a linearizable read.
func (cl *cluster) read(id uint64) {
	cl.reads++
	ctx := fmt.Sprintf("r%d", cl.reads)
	var floor uint64
	for s := range cl.delivered {
		floor = max(floor, s)
	}
	if cl.nodes[id].rn.ReadIndex([]byte(ctx)) == nil {
		cl.readFloor[ctx] = floor
		cl.logf("%d: read %s requested", id, ctx)
	}
}

// serveReads serves the reads whose index node n has applied, and checks
// that each sees every write delivered anywhere before it was requested.
func (cl *cluster) serveReads(n *testNode) {
	keep := n.reads[:0]
	for _, rs := range n.reads {
		if n.applied < rs.Index {
			keep = append(keep, rs)
			continue
		}
		cl.served++
		if floor := cl.readFloor[string(rs.Context)]; n.applied < floor {
			cl.fail("read %s served by node %d at slot %d misses slot %d, delivered before the read began", rs.Context, n.id, n.applied, floor)
		}
	}
	n.reads = keep
}

func entryValue(e paxos.Entry) string {
	switch e.Type {
	case paxos.EntryNoop:
		return "noop"
	case paxos.EntryConfig:
		m, _ := paxos.UnmarshalMembership(e.Data)
		return "config " + m.String()
	}
	return string(e.Data)
}

// observeAccept records a persisted acceptance and checks that no slot
// gets two chosen values.
func (cl *cluster) observeAccept(id uint64, e paxos.Entry) {
	k := slotBallot{e.Slot, e.Ballot}
	set := cl.accepts[k]
	if set == nil {
		set = map[uint64]bool{}
		cl.accepts[k] = set
	}
	set[id] = true
	v := entryValue(e)
	if old, ok := cl.acceptVal[k]; ok && old != v {
		cl.fail("slot %d ballot %v carries two values: %q and %q", e.Slot, e.Ballot, old, v)
	}
	cl.acceptVal[k] = v
	if !quorum.IsQuorumOf(cl.configAt(e.Slot), quorum.Phase2, slices.Collect(mapKeysOf(set))...) {
		return
	}
	if old, ok := cl.chosen[e.Slot]; ok && old != v {
		cl.fail("slot %d: two values chosen: %q and %q (at %v)", e.Slot, old, v, e.Ballot)
	}
	cl.chosen[e.Slot] = v
	if e.Type == paxos.EntryConfig {
		m, _ := paxos.UnmarshalMembership(e.Data)
		sys, err := m.System()
		if err != nil {
			cl.fail("slot %d: chosen configuration %v: %v", e.Slot, m, err)
			return
		}
		cl.configs[e.Slot] = sys
	}
}

// configAt is the configuration that governs slot t by the observer's
// reckoning: the last one chosen in a slot s with s+alpha <= t.
func (cl *cluster) configAt(t uint64) quorum.System {
	sys, at := cl.sys, uint64(0)
	for s, c := range cl.configs {
		if s+cl.alpha <= t && s > at {
			sys, at = c, s
		}
	}
	return sys
}

func mapKeysOf(m map[uint64]bool) func(func(uint64) bool) {
	return func(yield func(uint64) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// deliver is the application applying a chosen entry.
func (cl *cluster) deliver(n *testNode, e paxos.Entry) {
	if e.Slot != n.applied+1 {
		cl.fail("node %d delivered slot %d after %d", n.id, e.Slot, n.applied)
	}
	v := entryValue(e)
	if old, ok := cl.delivered[e.Slot]; ok && old != v {
		cl.fail("slot %d delivered as %q and as %q (node %d)", e.Slot, old, v, n.id)
	}
	if c, ok := cl.chosen[e.Slot]; ok && c != v {
		cl.fail("slot %d delivered as %q by node %d but %q was chosen", e.Slot, v, n.id, c)
	}
	cl.delivered[e.Slot] = v
	n.applied = e.Slot
	n.hash = mix(n.hash, v)
	cl.logf("%d: apply %v", n.id, e)
}

func mix(h uint64, v string) uint64 {
	f := fnv.New64a()
	fmt.Fprintf(f, "%d|%s", h, v)
	return f.Sum64()
}

func (cl *cluster) prefixHash(slot uint64) uint64 {
	var h uint64
	for s := uint64(1); s <= slot; s++ {
		h = mix(h, cl.delivered[s])
	}
	return h
}

// deliverMsg hands message i of the queue to its destination; dup keeps a
// copy in the queue.
func (cl *cluster) deliverMsg(i int, dup bool) {
	m := cl.queue[i]
	if !dup {
		cl.queue = append(cl.queue[:i], cl.queue[i+1:]...)
	}
	n := cl.nodes[m.To]
	if n == nil || n.rn == nil || cl.cut[[2]uint64{m.From, m.To}] {
		return
	}
	if err := n.rn.Step(m); err != nil {
		cl.fail("step %v: %v", m, err)
	}
}

func (cl *cluster) crash(id uint64) {
	n := cl.nodes[id]
	n.rn = nil
	cl.logf("%d: crash", id)
}

func (cl *cluster) restart(id uint64) {
	cl.start(cl.nodes[id])
	cl.logf("%d: restart with promise %v, commit %d", id, cl.nodes[id].disk.HardState.Promised, cl.nodes[id].disk.HardState.Commit)
}

func (cl *cluster) compact(id uint64) {
	n := cl.nodes[id]
	if n.rn == nil || n.applied == 0 {
		return
	}
	snap, err := n.rn.Compact(n.applied, fmt.Append(nil, n.hash))
	if err != nil {
		cl.fail("compact: %v", err)
		return
	}
	n.disk.Snapshot = snap
	n.disk.Entries = slices.DeleteFunc(n.disk.Entries, func(e paxos.Entry) bool { return e.Slot <= snap.Slot })
}

func (cl *cluster) tickAll() {
	for _, id := range cl.ids {
		if n := cl.nodes[id]; n.rn != nil {
			n.rn.Tick()
		}
	}
}

// leaders returns the nodes that believe they lead.
func (cl *cluster) leaders() []uint64 {
	var out []uint64
	for _, id := range cl.ids {
		if n := cl.nodes[id]; n.rn != nil && n.rn.Status().Role == paxos.Leader {
			out = append(out, id)
		}
	}
	return out
}

func (cl *cluster) propose(id uint64) {
	cl.proposals++
	v := fmt.Sprintf("v%d", cl.proposals)
	if err := cl.nodes[id].rn.Propose([]byte(v)); err == nil {
		cl.logf("%d: propose %s", id, v)
	}
}

// faults are the odds of each random action, per mille. Each seed draws
// its own (swarm testing: some runs crash a lot, some partition a lot,
// some drop a lot), which finds more than one fixed mix.
type faults struct {
	tick, propose, crash, compact, partition, heal, drop, dup, delay int
	// transfer: a leader hands over to a random voter (lease runs only,
	// so that the others replay as before).
	transfer int
}

func (cl *cluster) drawFaults() faults {
	f := faults{
		tick: 50 + cl.rng.IntN(100), propose: 40 + cl.rng.IntN(80),
		crash: cl.rng.IntN(25), compact: cl.rng.IntN(10),
		partition: cl.rng.IntN(10), heal: 2 + cl.rng.IntN(10),
		drop: cl.rng.IntN(15), dup: cl.rng.IntN(10), delay: cl.rng.IntN(10),
	}
	if cl.lease {
		f.transfer = 1 + cl.rng.IntN(10)
	}
	return f
}

// randomStep takes one random action.
func (cl *cluster) randomStep(f faults) {
	r := cl.rng.IntN(1000)
	switch {
	case r < f.tick:
		cl.tickAll()
	case r < f.tick+f.propose:
		if ls := cl.leaders(); len(ls) > 0 {
			if id := ls[cl.rng.IntN(len(ls))]; cl.rng.IntN(4) == 0 {
				cl.read(id)
			} else {
				cl.propose(id)
			}
		}
	case r < f.tick+f.propose+f.crash:
		id := cl.ids[cl.rng.IntN(len(cl.ids))]
		switch {
		case cl.dead[id]:
		case cl.nodes[id].rn == nil:
			cl.restart(id)
		case cl.rng.IntN(2) == 0: // a quick reboot: messages sent before it still arrive after
			cl.crash(id)
			cl.restart(id)
		default:
			cl.crash(id)
		}
	case r < f.tick+f.propose+f.crash+f.compact:
		cl.compact(cl.ids[cl.rng.IntN(len(cl.ids))])
	case r < f.tick+f.propose+f.crash+f.compact+f.partition:
		cl.partitionRandom()
	case r < f.tick+f.propose+f.crash+f.compact+f.partition+f.heal:
		cl.cut = map[[2]uint64]bool{}
	case r < f.tick+f.propose+f.crash+f.compact+f.partition+f.heal+f.transfer:
		if ls := cl.leaders(); len(ls) > 0 {
			to := cl.ids[cl.rng.IntN(len(cl.ids))]
			if cl.nodes[ls[cl.rng.IntN(len(ls))]].rn.TransferLeader(to) == nil {
				cl.logf("transfer to %d", to)
			}
		}
	default:
		if len(cl.queue) == 0 {
			cl.tickAll()
			break
		}
		i := cl.rng.IntN(len(cl.queue))
		switch x := cl.rng.IntN(100); {
		case x < f.drop:
			cl.queue = append(cl.queue[:i], cl.queue[i+1:]...)
		case x < f.drop+f.delay:
			cl.slow = append(cl.slow, cl.queue[i])
			cl.queue = append(cl.queue[:i], cl.queue[i+1:]...)
		case x < f.drop+f.delay+2 && len(cl.slow) > 0:
			j := cl.rng.IntN(len(cl.slow))
			cl.queue = append(cl.queue, cl.slow[j])
			cl.slow = append(cl.slow[:j], cl.slow[j+1:]...)
		case x < f.drop+f.dup:
			cl.deliverMsg(i, true)
		default:
			cl.deliverMsg(i, false)
		}
	}
	cl.process()
}

// partitionRandom cuts the nodes into two random sides. With leases, half
// the time it cuts random links one way instead: a node may then lose its
// leader while another still hears it, which is when the acceptors'
// promise to a lease matters.
func (cl *cluster) partitionRandom() {
	cl.cut = map[[2]uint64]bool{}
	if cl.lease && cl.rng.IntN(2) == 0 {
		for _, a := range cl.ids {
			for _, b := range cl.ids {
				if a != b && cl.rng.IntN(3) == 0 {
					cl.cut[[2]uint64{a, b}] = true
				}
			}
		}
		return
	}
	side := map[uint64]bool{}
	for _, id := range cl.ids {
		side[id] = cl.rng.IntN(2) == 0
	}
	for _, a := range cl.ids {
		for _, b := range cl.ids {
			if side[a] != side[b] {
				cl.cut[[2]uint64{a, b}] = true
			}
		}
	}
}

// heal restarts every node, ends partitions and runs a fault-free network
// with ticks until every node has delivered a proposal made after the
// heal. It reports an error if that takes too long.
func (cl *cluster) heal(maxRounds int) error {
	cl.cut = map[[2]uint64]bool{}
	cl.queue = append(cl.queue, cl.slow...)
	cl.slow = nil
	for _, id := range cl.ids {
		if cl.nodes[id].rn == nil && !cl.dead[id] {
			cl.restart(id)
		}
	}
	var want uint64
	for round := 0; round < maxRounds; round++ {
		cl.tickAll()
		cl.process()
		for len(cl.queue) > 0 {
			cl.deliverMsg(0, false)
			cl.process()
		}
		// A proposal is lost if its leader is deposed before it is chosen:
		// propose again every so often until one is delivered.
		if want == 0 || (want == ^uint64(0) && round%30 == 0) {
			want = 0
			if ls := cl.leaders(); len(ls) == 1 {
				n := cl.nodes[ls[0]]
				if n.rn.Propose([]byte("after-heal")) == nil {
					want = ^uint64(0)
				}
				cl.process()
			}
			continue
		}
		for s, v := range cl.delivered {
			if v == "after-heal" {
				want = s
			}
		}
		done := true
		for _, id := range cl.configAt(^uint64(0)).Voters() {
			if !cl.dead[id] && cl.nodes[id].applied < want {
				done = false
			}
		}
		if done {
			return cl.err
		}
	}
	var st []string
	for _, id := range cl.ids {
		if cl.dead[id] {
			continue
		}
		s := cl.nodes[id].rn.Status()
		st = append(st, fmt.Sprintf("%d:%v commit=%d applied=%d promised=%v", id, s.Role, s.Commit, cl.nodes[id].applied, s.Promised))
	}
	return fmt.Errorf("%w: no progress after heal (want slot %d): %s", errStuck, want, strings.Join(st, "; "))
}

// errStuck marks a run that broke no invariant but made no progress.
var errStuck = errors.New("stuck")

func majority(n int) paxos.Membership {
	m := paxos.Membership{Geometry: "majority"}
	for i := 1; i <= n; i++ {
		m.Voters = append(m.Voters, quorum.Node{ID: uint64(i)})
	}
	return m
}
