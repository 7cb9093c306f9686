package kv

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/kv/identity"

	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/internal/sim/simpebble"
	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/command"
	"github.com/quorumkv/quorumkv/kv/consensus"
	"github.com/quorumkv/quorumkv/kv/eventual"
	"github.com/quorumkv/quorumkv/kv/internal/kvtest"
	"github.com/quorumkv/quorumkv/kv/store"
	"github.com/quorumkv/quorumkv/raft"
	"github.com/quorumkv/quorumkv/storage"
)

// Whole nodes in the deterministic simulator (DESIGN.md §8): each node is
// a real Store (catalog, replica driver, Raft and Multi-Paxos cores, apply)
// on a real Pebble over simpebble's in-memory file system, driven from
// the simulation's single goroutine through store.OpenDriven's loop functions;
// peer messages cross sim's network encoded by the real peer codec.
//
// The cluster forms as a real one does: node 1 founds it; every other
// node is registered in the catalog by meta's leader (the Join RPC's
// work, minus HTTP), saves its ID (SaveJoin) and starts; meta's leader
// adds it to meta as a learner and promotes it (driveMeta). Then a raft
// and a paxos keyspace (N=3) are placed and created through meta.
//
// Clients outside the cluster send put, get, delete and compare-and-swap
// to a node, follow "not the leader" hints, and record everything in a
// sim.History, while the nemesis partitions, drops, duplicates, crashes
// nodes (losing what Pebble had not synced) and restarts them. After
// every step at most one replica of a range may lead in one Raft term or
// Paxos ballot. At the end the faults heal, every client must complete
// operations again (liveness), every key is read back, the history must
// be linearizable (porcupine), and the replicas of every range must hold
// the same data.
//
// QKV_SIM_SEEDS=n runs more seeds; a failure prints the command that
// replays its seed.

func TestSimWholeNodes(t *testing.T) {
	for _, shape := range []simShape{
		{name: "nodes=3", nodes: 3},
		{name: "nodes=5", nodes: 5},
		// Every node may be down at once: no progress then, but nothing
		// acknowledged may be lost when they come back.
		{name: "nodes=3,crash=all", nodes: 3, crashAll: true},
		// A node that has just been elected crashes at once, now and
		// then: its no-op may commit old entries after it restarts.
		{name: "nodes=3,crash-after-election", nodes: 3, electionCrashes: true},
		// A node crashes between sending a leader's appends and syncing
		// its own copy of them, now and then, all nodes at once too.
		{name: "nodes=3,crash-before-sync", nodes: 3, syncCrashes: true, crashAll: true},
	} {
		t.Run(shape.name, func(t *testing.T) {
			sim.RunSeeds(t, 16, func(t *testing.T, seed uint64) {
				c := newSimCluster(t, seed, shape.nodes)
				c.runWorkload(shape)
				c.check()
			})
		})
	}
}

// A seed replays exactly: two runs of one seed leave the same trace. This
// is what makes a failing seed worth printing; it would break if the store
// drew randomness or ordered its work by anything but the seed (Go map
// order, the wall clock, Pebble's background goroutines).
func TestSimReplaysSeed(t *testing.T) {
	run := func() string {
		c := newSimCluster(t, 7, 3)
		c.runWorkload(simShape{nodes: 3, faults: time.Second})
		c.check()
		var b strings.Builder
		if _, err := c.s.Trace().WriteTo(&b); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	a, b := run(), run()
	if a != b {
		al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
		for i := range min(len(al), len(bl)) {
			if al[i] != bl[i] {
				t.Fatalf("seed 7 ran differently the second time, from trace line %d:\n%s\n%s", i+1, al[i], bl[i])
			}
		}
		t.Fatalf("seed 7 ran differently the second time: %d trace lines, then %d", len(al), len(bl))
	}
}

// A follower that needs a snapshot catches up even if the snapshot, or
// its acknowledgement, is lost: the leader used to wait in StateSnapshot
// for an answer that never came, and the follower stayed behind for good
// (found by TestSimWholeNodes, nodes=3 seed 179: the MsgAppResp after the
// snapshot was dropped). The store now reports every snapshot sent
// (consensus.RaftCore.Advance), and the leader's probe finds out the rest.
func TestSimLostSnapshotMessage(t *testing.T) {
	for _, lose := range []raft.MessageType{raft.MsgSnap, raft.MsgAppResp} {
		t.Run(lose.String(), func(t *testing.T) {
			c := newSimCluster(t, 1, 3)
			rd := c.node(1).store.Catalog().Ranges["rk"][0]
			leader := c.node(c.rangeLeader(rd.ID))
			var follower uint64
			for _, rep := range rd.Replicas {
				if rep.NodeID != leader.id {
					follower = rep.NodeID
				}
			}
			// Cut the follower off while the leader's log grows past
			// LogTruncateEntries+LogKeepEntries and is compacted.
			var nodes []sim.NodeID
			for _, id := range c.ids {
				nodes = append(nodes, sim.NodeID(id))
			}
			heal := c.s.Net().Partition(sim.Isolate(nodes, sim.NodeID(follower)))
			applied := 0
			for i := range 100 {
				cmd := &command.Command{Op: command.OpPut, Key: []byte("k"), Value: fmt.Appendf(nil, "v%d", i)}
				if _, err := leader.store.StartPropose(rd.ID, cmd, func(command.Result) { applied++ }); err != nil {
					t.Fatal(err)
				}
			}
			leader.round()
			c.require("the leader to apply 100 writes", 5*time.Second, func() bool { return applied == 100 })

			// Then lose the first message of the kind under test after
			// the follower is back: the snapshot, or the follower's
			// acknowledgement of it.
			snapshotted, dropped := false, false
			c.received = func(to, rangeID uint64, m consensus.PeerMessage) {
				snapshotted = snapshotted || (to == follower && rangeID == rd.ID && m.Raft != nil && m.Raft.Type == raft.MsgSnap)
			}
			c.drop = func(from, rangeID uint64, m consensus.PeerMessage) bool {
				if dropped || rangeID != rd.ID || m.Raft == nil || m.Raft.Type != lose {
					return false
				}
				if lose == raft.MsgAppResp && (from != follower || !snapshotted) {
					return false
				}
				dropped = true
				return true
			}
			heal()
			c.require("the message to be lost", 5*time.Second, func() bool { return dropped })
			// One more write: the follower must receive it too.
			last := false
			if _, err := leader.store.StartPropose(rd.ID, &command.Command{Op: command.OpPut, Key: []byte("k"), Value: []byte("last")}, func(command.Result) { last = true }); err != nil {
				t.Fatal(err)
			}
			leader.round()
			if err := c.s.RunUntil(func() bool { return last && c.converged() }, 3*time.Second); err != nil {
				t.Fatalf("the follower did not catch up: %v\n%s", err, c.describeRanges())
			}

		})
	}
}

// simShape is one cluster's shape and fault schedule.
type simShape struct {
	name  string
	nodes int
	// crashAll lets the nemesis crash every node at once (default: a
	// minority).
	crashAll bool
	// faults is the virtual time under faults; 0 means simFaults.
	faults time.Duration
	// electionCrashes crashes, now and then, a node right after it is
	// elected leader of a range, and restarts it soon after.
	electionCrashes bool
	// syncCrashes crashes, now and then, a node in the middle of a round:
	// after it sent a leader's appends and before it synced them
	// (consensus.Ready.Eager), and restarts it soon after.
	syncCrashes bool
}

// Simulation constants; virtual time.
const (
	simTick = 10 * time.Millisecond
	// simFaults is the time under faults, simLiveness the time allowed
	// after they heal for every client to complete simLiveOps operations.
	simFaults   = 5 * time.Second
	simLiveness = 5 * time.Second
	simLiveOps  = 3
	// simOpTimeout is when a client gives up (outcome unknown);
	// simRetry when it sends an operation whose node went silent
	// elsewhere (a write with its idempotency key, as the real server's
	// forwarding does after forwardAttemptTimeout).
	simOpTimeout = time.Second
	simRetry     = 150 * time.Millisecond
	simClients   = 4
	simKeys      = 3 // per keyspace
	simClientID  = 100

	// Eventual keyspaces: the coordinators' replica timeout, the hint
	// window and the tombstone grace (short, so that hints expire and
	// tombstones are purged within a run; the grace must exceed the
	// window plus the timeout plus twice the HLC's offset), and the
	// periods of the background loops.
	simReplicaTimeout      = 300 * time.Millisecond
	simHintWindow          = time.Second
	simTombstoneGrace      = 2500 * time.Millisecond
	simHintReplayInterval  = 100 * time.Millisecond
	simAntiEntropyInterval = 100 * time.Millisecond
	// simPlacementInterval is the period of the placement driver's passes.
	simPlacementInterval = 100 * time.Millisecond
	// simEpoch is the nodes' physical time at virtual time 0 (2026-01-01).
	simEpoch = int64(1767225600) * int64(time.Second)
)

// simKeyspaces are the keyspaces the clients use.
var simKeyspaces = []catalog.KeyspaceDescriptor{
	{Name: "rk", Mode: catalog.ModeRaft, Replicas: 3, Ranges: 2},
	{Name: "pk", Mode: catalog.ModePaxos, Replicas: 3, Ranges: 2},
}

// simCluster is one seed's run.
type simCluster struct {
	// unrepaired is why repaired was last false (whyUnrepaired).
	unrepaired string
	// pinLeaders switches leadership balancing off, for tests that hand
	// proposals to a range's leader themselves.
	pinLeaders bool
	t          testing.TB
	seed       uint64
	s          *sim.Sim
	h          *sim.History
	ids        []uint64 // the store nodes, in ID order
	disks      map[uint64]*simpebble.Disk
	added      map[uint64]bool // store nodes the sim knows
	dirty      map[uint64]bool // nodes that ran a round since the last invariant check
	// leaders maps a range and Raft term, or a range and Paxos ballot, to
	// the one node that led it.
	leaders   map[simTermKey]uint64
	clients   []*simClient
	clusterID string
	// keyspaces are the keyspaces the cluster was given.
	keyspaces []catalog.KeyspaceDescriptor
	// callSeq numbers the replica requests of eventual coordinators
	// across every incarnation (simReplicaNet).
	callSeq uint64
	// eventual, if set, serves the clients' requests of eventual
	// keyspaces (sim_eventual_test.go).
	eventual func(n *simNode, from sim.NodeID, req simEvRequest)
	// nodeConfig, if set, adjusts a node's NodeConfig before it starts
	// (sim_eventual_test.go: clocks, canaries).
	nodeConfig func(id uint64, cfg *NodeConfig)
	// drop, if set, loses the peer messages it returns true for (tests of
	// one lost message).
	drop func(from, rangeID uint64, m consensus.PeerMessage) bool
	// received, if set, sees every peer message a node steps.
	received func(to, rangeID uint64, m consensus.PeerMessage)
	// mangleChunk, if set, may change every snapshot chunk answer a node
	// receives (a forged or corrupted stream).
	mangleChunk func(to uint64, resp []byte) []byte
	// unexpected collects answers no correct node gives.
	unexpected []string
	// canary is the bug planted in every node (kv/store/canary.go).
	canary store.Canary
	// appliedAt is the log index at which each idempotency key of each
	// range took effect (checkOnce).
	appliedAt map[simApplyKey]uint64
	// electionCrashes, syncCrashes, crashAll: see simShape.
	electionCrashes, syncCrashes, crashAll bool
	// roundCrashes counts the crashes between a round's eager messages
	// and its sync (syncCrashes).
	roundCrashes int
	// defaultGrowTo is every store's StoreConfig.DefaultGrowTo: 0, so that
	// the default keyspace stays on node 1, but in the tests of growth.
	defaultGrowTo int
	// rangeMaxBytes, if set, is every store's StoreConfig.RangeMaxBytes,
	// and the nodes run the split driver (split_sim_test.go); read at
	// each start. maxBatchBytes, if set, is their storage's MaxBatchBytes.
	rangeMaxBytes int64
	maxBatchBytes int
	// mergeBelowBytes is every store's StoreConfig.MergeBelowBytes once
	// mergeLimits is set (merge_sim_test.go's setMergeLimits); until then
	// merges are off.
	mergeBelowBytes int64
	mergeLimits     bool
	// holdSyncs names a node whose syncs return only when the test calls
	// its store's FinishSync (0: none).
	holdSyncs uint64
	// snapshotChunkBytes, if set, is every store's SnapshotChunkBytes.
	snapshotChunkBytes int
	// keys is how many keys per keyspace the clients use; 0 means simKeys.
	keys int
	// splitCrashes crashes, one time in three, the leader of a split
	// right after it applied it, and restarts it soon after;
	// splitRestarts counts those crashes.
	splitCrashes  bool
	splitRestarts int
	// evSplits counts the eventual ranges' splits meta applied.
	evSplits int
}

// numKeys is how many keys per keyspace the clients use.
func (c *simCluster) numKeys() int { return cmp.Or(c.keys, simKeys) }

// elected sees node id become the leader of a range in a new term or
// ballot; with electionCrashes, it crashes the node a moment later, one
// time in five, as long as a majority stays up, and restarts it soon
// after.
func (c *simCluster) elected(id uint64) {
	if !c.electionCrashes || c.s.Rand().IntN(5) != 0 || !c.oneMoreMayCrash() {
		return
	}
	node := sim.NodeID(id)
	c.s.After(time.Duration(c.s.Rand().IntN(3))*time.Millisecond, func() {
		if !c.s.Up(node) {
			return
		}
		c.s.Tracef("crash n%d right after its election", id)
		c.s.Crash(node)
		c.s.After(time.Duration(20+c.s.Rand().IntN(200))*time.Millisecond, func() {
			if !c.s.Up(node) {
				c.s.Restart(node)
			}
		})
	})
}

// syncCrash is the panic with which syncHook stops a round between its
// eager messages and its sync; simNode.round recovers it and crashes the
// node there.
type syncCrash struct{}

// syncHook is every store's StoreConfig.SyncHook: with syncCrashes, one
// round in 100 of those that sent messages before their sync stops there
// (syncCrash), as long as a majority stays up (or crashAll).
func (c *simCluster) syncHook(id uint64) {
	if !c.syncCrashes || c.s.Rand().IntN(100) != 0 || !(c.crashAll || c.oneMoreMayCrash()) {
		return
	}
	panic(syncCrash{})
}

// crashInRound crashes node id in the middle of its round, and restarts
// it soon after: what the round sent is on the wire, what it had not
// synced is lost.
func (c *simCluster) crashInRound(n *simNode) {
	n.tr.flush()
	node := sim.NodeID(n.id)
	c.s.Tracef("crash n%d between its eager messages and its sync", n.id)
	c.roundCrashes++
	c.s.Crash(node)
	c.s.After(time.Duration(20+c.s.Rand().IntN(200))*time.Millisecond, func() {
		if !c.s.Up(node) {
			c.s.Restart(node)
		}
	})
}

type simApplyKey struct {
	rangeID uint64
	idem    string
}

// oneMoreMayCrash reports whether one more node may crash with a
// majority of the nodes still up.
func (c *simCluster) oneMoreMayCrash() bool {
	down := 0
	for _, n := range c.ids {
		if !c.s.Up(sim.NodeID(n)) {
			down++
		}
	}
	return down+1 <= (len(c.ids)-1)/2
}

// checkOnce is every replica's StoreConfig.onApply: a write with an
// idempotency key takes effect at one log index of its range, on every
// replica and in every incarnation (a replica that crashed before its
// apply was durable applies that same index again); a retry that reaches
// the log again is answered from the dedup state.
func (c *simCluster) checkOnce(rangeID, index uint64, idem []byte, fresh bool) {
	if !fresh {
		return
	}
	k := simApplyKey{rangeID, string(idem)}
	if prev, ok := c.appliedAt[k]; ok && prev != index {
		c.unexpected = append(c.unexpected, fmt.Sprintf("range %d applied the write with idempotency key %q twice: at %d and at %d",
			rangeID, idem, prev, index))
		return
	}
	c.appliedAt[k] = index
}

type simTermKey struct {
	rangeID uint64
	term    uint64
	owner   uint64 // the ballot's node for Paxos; 0 for Raft
}

// newSimCluster forms a cluster of n nodes on a lossless network, creates
// the clients' keyspaces, and waits until every range has a leader.
func newSimCluster(t testing.TB, seed uint64, n int) *simCluster {
	return newSimClusterWith(t, seed, n, simKeyspaces)
}

// newSimClusterWith is newSimCluster with the given keyspaces; opts change
// the cluster before its nodes start (a canary, say).
func newSimClusterWith(t testing.TB, seed uint64, n int, keyspaces []catalog.KeyspaceDescriptor, opts ...func(*simCluster)) *simCluster {
	s := sim.NewForTest(t, sim.Config{Seed: seed, Link: sim.DefaultLink()})
	c := &simCluster{t: t, seed: seed, s: s, h: sim.NewHistory(s), disks: map[uint64]*simpebble.Disk{},
		added: map[uint64]bool{}, dirty: map[uint64]bool{}, leaders: map[simTermKey]uint64{}, keyspaces: keyspaces,
		appliedAt: map[simApplyKey]uint64{}}
	for _, o := range opts {
		o(c)
	}
	for id := range uint64(n) {
		c.ids = append(c.ids, id+1)
	}
	t.Cleanup(c.close)
	s.AddInvariant("one leader per range per term or ballot", c.oneLeaderPerTerm)
	c.form()
	for _, ks := range keyspaces {
		c.createKeyspace(ks)
	}
	c.require("every range to elect a leader", 10*time.Second, c.allRangesLed)
	return c
}

// runWorkload runs the clients under the nemesis, heals, and requires
// every client to make progress again.
func (c *simCluster) runWorkload(shape simShape) {
	s := c.s
	c.electionCrashes, c.syncCrashes, c.crashAll = shape.electionCrashes, shape.syncCrashes, shape.crashAll
	c.startFaults(c.startClients, shape.crashAll)
	if err := s.RunFor(cmp.Or(shape.faults, simFaults)); err != nil {
		c.t.Fatal(err)
	}

	s.Heal()
	c.electionCrashes, c.syncCrashes = false, false // one still scheduled restarts its node within 0.2 s
	s.Tracef("healed: liveness from here")
	base := make([]int, len(c.clients))
	for i, cl := range c.clients {
		base[i] = cl.completed
	}
	c.require(fmt.Sprintf("every client to complete %d operations after the faults healed", simLiveOps), simLiveness, func() bool {
		for i, cl := range c.clients {
			if cl.completed < base[i]+simLiveOps {
				return false
			}
		}
		return true
	})
}

// startFaults makes the network between nodes lossy, duplicating and
// reordering, starts the clients (startClients: they reach nodes over
// connections that lose nothing, as an HTTP/2 stream does not duplicate a
// request, but die with their node), and starts the nemesis; crashAll
// lets it crash every node at once (default: a minority).
func (c *simCluster) startFaults(startClients func(), crashAll bool) {
	c.s.Net().SetDefault(sim.LinkConfig{MinDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond, DropRate: 0.02, DupRate: 0.02})
	startClients()
	cfg := sim.NemesisConfig{}
	for _, id := range c.ids {
		cfg.Nodes = append(cfg.Nodes, sim.NodeID(id))
	}
	if crashAll {
		cfg.MaxCrashed = len(cfg.Nodes)
	}
	c.s.StartNemesis(cfg)
}

// check reads every key back (an acknowledged write that was lost fails
// the linearizability check), checks the history with porcupine, and
// requires every range's replicas to converge on the same data.
func (c *simCluster) check() {
	t, s := c.t, c.s
	for _, cl := range c.clients {
		cl.stopped = true
	}
	reader := c.clients[0]
	reader.script, reader.scripted, reader.stopped = c.allKeys(), true, false
	reader.env.After(0, reader.next)
	c.require("the final reads", simLiveness, func() bool { return reader.stopped && c.allIdle() })
	for _, msg := range c.unexpected {
		t.Error(msg)
	}
	sim.AssertLinearizable(t, c.h, sim.DefaultCheckTimeout)
	if err := s.RunUntil(c.converged, simLiveness); err != nil {
		t.Fatalf("the replicas of some range did not converge: %v\n%s", err, c.describeRanges())
	}
	c.checkReplicasAgree()
	crashes := 0
	for _, d := range c.disks {
		crashes += d.Crashes()
	}
	t.Logf("seed %d: %d operations, %d crashes (%d between eager messages and a sync), %d steps, %v virtual",
		c.seed, c.h.Len(), crashes, c.roundCrashes, s.Steps(), s.Now())
}

// require runs the sim until cond holds, failing the test if it does not
// within d.
func (c *simCluster) require(what string, d time.Duration, cond func() bool) {
	c.t.Helper()
	c.unrepaired = ""
	if err := c.s.RunUntil(cond, d); err != nil {
		if c.unrepaired != "" {
			err = fmt.Errorf("%w (%s)", err, c.unrepaired)
		}
		c.t.Fatalf("waiting %v for %s: %v", d, what, err)
	}
}

func (c *simCluster) close() {
	for _, id := range c.ids {
		if !c.added[id] {
			continue
		}
		if n, ok := c.s.Process(sim.NodeID(id)).(*simNode); ok && n != nil {
			n.Stop()
		}
	}
}

// node returns node id's running incarnation, or nil while it is down.
func (c *simCluster) node(id uint64) *simNode {
	if !c.added[id] {
		return nil
	}
	n, _ := c.s.Process(sim.NodeID(id)).(*simNode)
	return n
}

// form founds the cluster on node 1 and joins the others one by one, the
// way JoinCluster and registerNode do, until meta has every node (up to
// MaxMetaVoters) as a voter and every node knows the whole catalog. The
// conditions of form and createKeyspace also act: between two steps, they
// propose on meta's current leader when nothing of theirs is in flight.
func (c *simCluster) form() {
	c.addNode(1)
	c.clusterID = c.node(1).store.ClusterID()
	for _, id := range c.ids[1:] {
		c.join(id)
	}
	voters := min(len(c.ids), store.MaxMetaVoters)
	if voters == 2 {
		voters = 1 // meta never has two voters (driveMeta)
	}
	c.require("meta to take every node", 20*time.Second, func() bool {
		leader := c.metaLeader()
		if leader == nil || len(store.MetaCore(leader.store.Replicas[catalog.MetaRangeID]).RawNode.ConfState().Voters) != voters {
			return false
		}
		for _, id := range c.ids {
			if n := c.node(id); n == nil || len(n.store.Catalog().Nodes) != len(c.ids) {
				return false
			}
		}
		return true
	})
}

// join registers node id with meta, as a node started with --join is
// admitted, and starts it.
func (c *simCluster) join(id uint64) {
	got := uint64(0)
	c.require(fmt.Sprintf("node %d to be registered", id), 10*time.Second, func() bool {
		if got != 0 {
			return true
		}
		leader := c.metaLeader()
		if leader == nil || leader.joining {
			return false
		}
		self := simSelf(id)
		cmd := &command.Command{Op: command.OpCatalog, Value: catalog.MustJSON(catalog.CatalogOp{AddNode: &self})}
		_, err := leader.store.StartPropose(catalog.MetaRangeID, cmd, func(res command.Result) {
			leader.joining = false
			if res.Err == nil {
				got = res.ID
			}
		})
		if err == nil {
			leader.joining = true
			leader.round()
		}
		return false
	})
	if got != id {
		c.t.Fatalf("node %d joined with ID %d", id, got)
	}
	c.addNode(id)
}

// simSelf is node id as it registers: its identity (simIdentity) is
// fixed by its ID, so that a seed replays exactly.
func simSelf(id uint64) catalog.NodeDescriptor {
	ident := simIdentity(id)
	return catalog.NodeDescriptor{Name: ident.Name, Addr: fmt.Sprintf("sim:%d", id), Zone: fmt.Sprintf("z%d", id), Weight: 1,
		UUID: ident.UUID, SecretHash: ident.SecretHash()}
}

// simIdentity is the identity node id's disk holds from its first start.
func simIdentity(id uint64) identity.Identity {
	seed := bytes.Repeat([]byte{byte(id)}, 16+identity.SecretBytes)
	ident, err := identity.New(fmt.Sprintf("n%d", id), bytes.NewReader(seed))
	if err != nil {
		panic(err)
	}
	return ident
}

// addNode registers store node id with the sim and starts it.
func (c *simCluster) addNode(id uint64) {
	d := simpebble.New()
	c.disks[id] = d
	c.added[id] = true
	c.s.AddNode(sim.NodeID(id), func(env *sim.Env) sim.Process { return c.start(env, id) }, d)
}

// start opens node id's store on what its disk kept: node 1 founds the
// cluster on its first start, the others save the ID meta gave them.
func (c *simCluster) start(env *sim.Env, id uint64) sim.Process {
	db, err := storage.Open("db", storage.Options{FS: c.disks[id].FS(), Logger: kvtest.Quiet(), MaxBatchBytes: c.maxBatchBytes})
	if err != nil {
		panic(err)
	}
	member, err := identity.IsMember(db)
	if err != nil {
		panic(err)
	}
	if !member {
		// A first start: the identity is written before anything else
		// (kvd's identity.Open, with a fixed identity).
		if err := identity.Save(db, simIdentity(id)); err != nil {
			panic(err)
		}
	}
	if !member && id != 1 {
		if err := identity.SaveJoin(db, id, c.clusterID); err != nil {
			panic(err)
		}
	}
	n := &simNode{c: c, env: env, id: id, db: db, served: map[uint64]bool{}, snapCalls: map[uint64]func([]byte, error){}}
	n.tr = &simTransport{n: n, out: map[uint64][]simPeerMsg{}}
	// Each node's physical clock is off true (virtual) time by up to
	// 50 ms, well within the HLC's tolerated offset.
	skew := int64(env.Rand().IntN(int(100*time.Millisecond))) - int64(50*time.Millisecond)
	clock := func() int64 { return simEpoch + int64(env.Now()) + skew }
	cfg := store.StoreConfig{
		Clock:              clock,
		Canary:             c.canary,
		SyncHook:           func() { c.syncHook(id) },
		StartSync:          func() { n.startSync() },
		NoLeaderBalancing:  c.pinLeaders,
		SnapshotChunkBytes: c.snapshotChunkBytes,
		OnApply:            c.checkOnce,
		TickInterval:       simTick,
		// Short logs, so that compaction and snapshots to lagging or
		// restarted replicas happen in every run.
		LogTruncateEntries: 48, LogKeepEntries: 8,
		Logger:        kvtest.Quiet(),
		Seed:          env.Rand().Uint64() | 1,
		Self:          simSelf(id),
		DefaultGrowTo: c.defaultGrowTo,
		RangeMaxBytes: c.rangeMaxBytes,
		// Off unless a test asks (merge_sim_test.go).
		MergeBelowBytes: c.startMergeBelow(),
	}
	if n.store, err = store.OpenDriven(db, cfg, n.tr, id == 1); err != nil {
		panic(err)
	}
	n.net = &simReplicaNet{n: n, calls: map[uint64]func(eventual.ReplicaAnswer){}}
	nodeCfg := NodeConfig{
		Zone:           cfg.Self.Zone,
		Alive:          c.alive,
		PhysicalClock:  clock,
		ReplicaTimeout: simReplicaTimeout,
		MaxHintAge:     simHintWindow,
		TombstoneGrace: simTombstoneGrace,
		Seed:           env.Rand().Uint64() | 1,
		monotonic:      env.Now,
	}
	if c.nodeConfig != nil {
		c.nodeConfig(id, &nodeCfg)
	}
	if n.node, err = newNode(n.store, nodeCfg, n.net); err != nil {
		panic(err)
	}
	n.tr.flush()
	c.dirty[id] = true
	env.Every(simTick, func() {
		n.store.Tick()
		n.round()
	})
	// The loops kvd runs on goroutines (NewNode, StartAntiEntropy).
	env.Every(simHintReplayInterval, n.node.ev.ReplayHints)
	env.Every(simAntiEntropyInterval, n.node.ev.AntiEntropyStep)
	env.Every(simSweepInterval, n.node.ev.SweepStep) // kvd's split passes run it whatever the limit
	env.Every(simPlacementInterval, n.placementPass)
	if c.rangeMaxBytes > 0 {
		n.splitting = map[uint64]time.Duration{}
		env.Every(simSplitInterval, n.splitPass)
		env.Every(simSplitInterval, n.mergePass)
		n.store.EnableMerges()
	}
	return n
}

// placementPass is one pass of the placement driver, as StartPlacement
// runs it in kvd, but without waiting for its proposals: this goroutine
// is the store's loop. A change proposed again before the first one
// applied is refused by meta, or changes nothing, harmlessly.
func (n *simNode) placementPass() {
	now := n.node.clock()
	n.node.observeLiveness(now)
	if r := n.store.Replicas[catalog.MetaRangeID]; r == nil || r.Role != consensus.RoleLeader {
		return
	}
	asks, gone := n.node.letGoAsks(now)
	left := func(l catalog.RangeReplica) {
		n.c.s.Tracef("n%d: range %d let n%d's replica go", n.id, l.Range, l.Node)
		n.proposeCatalog(catalog.CatalogOp{Left: &l})
	}
	for _, l := range gone {
		left(l)
	}
	for _, a := range asks {
		n.node.ask(a, func(ok bool) {
			if ok {
				left(a.Replica)
			}
		})
	}
	for _, a := range n.node.fillAsks() {
		n.node.ask(a, func(ok bool) {
			if ok {
				n.c.s.Tracef("n%d: n%d's replica of range %d filled", n.id, a.Replica.Node, a.Replica.Range)
				n.proposeCatalog(catalog.CatalogOp{Filled: &a.Replica})
			}
		})
	}
	for _, op := range n.node.plan(now) {
		n.c.s.Tracef("n%d proposes %s", n.id, catalog.MustJSON(op))
		n.proposeCatalog(op)
	}
}

// proposeCatalog proposes op to meta, not waiting for it.
func (n *simNode) proposeCatalog(op catalog.CatalogOp) {
	if n.store.Replicas[catalog.MetaRangeID] == nil {
		return // crashed since
	}
	_, _ = n.store.StartPropose(catalog.MetaRangeID, &command.Command{Op: command.OpCatalog, Value: catalog.MustJSON(op)}, func(res command.Result) {
		if res.Err != nil {
			n.c.s.Tracef("n%d: catalog change refused: %v", n.id, res.Err)
		}
	})
}

// alive is gossip's view of the nodes: the ones up, by identity.
func (c *simCluster) alive(nd catalog.NodeDescriptor) bool {
	var id uint64
	if _, err := fmt.Sscanf(nd.Name, "n%d", &id); err != nil {
		return false
	}
	return c.node(id) != nil && nd.UUID == simIdentity(id).UUID
}

// catalog returns the catalog as meta's leader sees it, or if meta has
// none, as the live node of the lowest ID does. (Not the lowest ID first:
// a node decommissioned and dropped from meta keeps running with the
// catalog it last applied, which may never say it was removed.)
func (c *simCluster) catalog() *store.CatalogView {
	if l := c.metaLeader(); l != nil {
		return l.store.Catalog()
	}
	for _, id := range c.ids {
		if n := c.node(id); n != nil && c.s.Up(sim.NodeID(id)) {
			return n.store.Catalog()
		}
	}
	panic("sim: no node is up")
}

// metaLeader returns the node whose meta replica leads, if any.
func (c *simCluster) metaLeader() *simNode {
	for _, id := range c.ids {
		if n := c.node(id); n != nil {
			if r := n.store.Replicas[catalog.MetaRangeID]; r != nil && r.Role == consensus.RoleLeader {
				return n
			}
		}
	}
	return nil
}

// createKeyspace places ks on the meta leader and proposes it, as
// CreateKeyspace does, and waits until every node's catalog has it.
func (c *simCluster) createKeyspace(ks catalog.KeyspaceDescriptor) {
	done, proposing := false, false
	c.require("keyspace "+ks.Name, 10*time.Second, func() bool {
		if done {
			for _, id := range c.ids {
				if _, ok := c.node(id).store.Catalog().Keyspaces[ks.Name]; !ok {
					return false
				}
			}
			return true
		}
		leader := c.metaLeader()
		if leader == nil || proposing {
			return false
		}
		d := ks
		op, err := leader.node.placeKeyspace(&d)
		if err != nil {
			c.t.Fatalf("placing %s: %v", ks.Name, err)
		}
		if _, err := leader.store.StartPropose(catalog.MetaRangeID, &command.Command{Op: command.OpCatalog, Value: op}, func(res command.Result) {
			proposing = false
			done = res.Err == nil
		}); err == nil {
			proposing = true
			leader.round()
		}
		return false
	})
}

// rangeLeader returns the leader of range id as its replicas see it.
func (c *simCluster) rangeLeader(id uint64) uint64 {
	for _, nid := range c.ids {
		if n := c.node(nid); n != nil && n.store.Replicas[id] != nil && n.store.Replicas[id].Role == consensus.RoleLeader {
			return nid
		}
	}
	return 0
}

// allRangesLed reports whether every range of the clients' keyspaces has
// a leader that every one of its replicas knows.
func (c *simCluster) allRangesLed() bool {
	cat := c.catalog()
	for _, ks := range c.keyspaces {
		if ks.Mode == catalog.ModeEventual {
			continue // no consensus group
		}
		for _, rd := range cat.Ranges[ks.Name] {
			leader := uint64(0)
			for _, rep := range rd.Replicas {
				n := c.node(rep.NodeID)
				if n == nil {
					return false
				}
				r := n.store.Replicas[rd.ID]
				if r == nil || r.Leader == 0 || (leader != 0 && r.Leader != leader) {
					return false
				}
				leader = r.Leader
			}
		}
	}
	return true
}

// oneLeaderPerTerm checks the replicas of the nodes that ran a round
// since the last check: a replica's role and term change only in its
// node's rounds.
func (c *simCluster) oneLeaderPerTerm() error {
	for _, id := range slices.Sorted(maps.Keys(c.dirty)) {
		delete(c.dirty, id)
		n := c.node(id)
		if n == nil {
			continue
		}
		for rid, r := range n.store.Replicas {
			if r.Role != consensus.RoleLeader {
				continue
			}
			k := simTermKey{rangeID: rid}
			switch core := r.Core.(type) {
			case *consensus.RaftCore:
				k.term = core.Log.HardState.Term
			case *consensus.PaxosCore:
				b := core.Log.HardState.Promised
				k.term, k.owner = b.Round, b.NodeID
				if b.NodeID != id {
					return fmt.Errorf("range %d: node %d leads under node %d's ballot %d.%d", rid, id, b.NodeID, b.Round, b.NodeID)
				}
			}
			if other, ok := c.leaders[k]; !ok {
				c.leaders[k] = id
				c.elected(id)
			} else if other != id {
				return fmt.Errorf("range %d: nodes %d and %d both lead term/ballot %d.%d", rid, other, id, k.term, k.owner)
			}
		}
	}
	return nil
}

// converged reports whether every range's replicas, all up, have applied
// the same index.
func (c *simCluster) converged() bool {
	cat := c.catalog()
	for name, ranges := range cat.Ranges {
		if cat.Keyspaces[name].Mode == catalog.ModeEventual {
			continue // no consensus group
		}
		for _, rd := range ranges {
			var applied []uint64
			for _, rep := range rd.Replicas {
				n := c.node(rep.NodeID)
				if n == nil || n.store.Replicas[rd.ID] == nil {
					return false
				}
				r := n.store.Replicas[rd.ID]
				applied = append(applied, r.Applied)
				if r.Applied < r.Core.Status().Commit {
					return false
				}
			}
			if slices.Min(applied) != slices.Max(applied) {
				return false
			}
		}
	}
	return true
}

// describeRanges is every replica's view of its range, for failures.
func (c *simCluster) describeRanges() string {
	var b strings.Builder
	for _, id := range c.ids {
		n := c.node(id)
		if n == nil {
			fmt.Fprintf(&b, "node %d: down\n", id)
			continue
		}
		for _, rid := range slices.Sorted(maps.Keys(n.store.Replicas)) {
			r := n.store.Replicas[rid]
			st := r.Core.Status()
			fmt.Fprintf(&b, "node %d range %d (%s): %s, leader %d, term %d, commit %d, applied %d\n",
				id, rid, r.Core.Protocol(), r.Role, r.Leader, st.Term, st.Commit, r.Applied)
		}
	}
	return b.String()
}

// checkReplicasAgree compares the data of every range across its
// replicas, which have applied the same prefix.
func (c *simCluster) checkReplicasAgree() {
	cat := c.catalog()
	for _, name := range slices.Sorted(maps.Keys(cat.Ranges)) {
		for _, rd := range cat.Ranges[name] {
			var first []byte
			for i, rep := range rd.Replicas {
				data, err := c.node(rep.NodeID).store.RangeDigest(rd.ID)
				if err != nil {
					c.t.Fatal(err)
				}
				if i == 0 {
					first = data
				} else if !bytes.Equal(data, first) {
					c.t.Errorf("range %d (%s): node %d's data differs from node %d's", rd.ID, name, rep.NodeID, rd.Replicas[0].NodeID)
				}
			}
		}
	}
}

func (c *simCluster) allKeys() []simRequest {
	var out []simRequest
	for _, ks := range c.keyspaces {
		for k := range c.numKeys() {
			out = append(out, simRequest{Keyspace: ks.Name, In: sim.KVGet(simKey(ks.Name, k))})
		}
	}
	return out
}

func (c *simCluster) allIdle() bool {
	for _, cl := range c.clients {
		if cl.op != nil {
			return false
		}
	}
	return true
}

// simKey is a key as the history names it: keyspace/key, so that
// porcupine checks the same key of two keyspaces apart.
func simKey(keyspace string, k int) string { return fmt.Sprintf("%s/k%d", keyspace, k) }

// simNode is one incarnation of a store node.
type simNode struct {
	c     *simCluster
	env   *sim.Env
	id    uint64
	db    *storage.DB
	store *store.Store
	node  *Node
	tr    *simTransport
	net   *simReplicaNet
	// joining: a registration is in flight on this node (form).
	joining bool
	// served are the replica calls this incarnation ran (simReplicaCall).
	served map[uint64]bool
	// snapCalls are the snapshot chunk requests this incarnation awaits,
	// by call ID (simSnapCall).
	snapCalls map[uint64]func([]byte, error)
	snapSeq   uint64
	// splitting are the ranges whose split this incarnation is driving
	// (splitPass).
	splitting map[uint64]time.Duration
}

// Receive is the store's loop waking up for a peer's messages or a
// client's request: the work, then one round.
func (n *simNode) Receive(from sim.NodeID, msg any) {
	switch m := msg.(type) {
	case simPacket:
		for _, pm := range m.msgs {
			dm, err := consensus.DecodePeerMessage(bytes.Clone(pm.msg)) // the network may deliver the packet twice
			if err != nil {
				panic(fmt.Sprintf("node %d: undecodable peer message from %d: %v", n.id, from, err))
			}
			if n.c.received != nil {
				n.c.received(n.id, pm.rangeID, dm)
			}
			n.store.StepInbound(store.Inbound{RangeID: pm.rangeID, Msg: dm})
		}
	case simRequest:
		n.serve(from, m)
	case simReplicaCall:
		// The peer transport (an HTTP/2 stream) runs a call at most
		// once: run twice, a replica's definite refusal (a version ahead
		// of its clock) could turn into an acceptance.
		if n.served[m.ID] {
			return
		}
		n.served[m.ID] = true
		n.env.Send(from, simReplicaAnswer{ID: m.ID, Answer: n.node.ev.ServeReplica(m.Req)})
	case simReplicaAnswer:
		n.net.answer(m.ID, m.Answer)
	case simSnapCall:
		// A duplicated call is refused by the sender's sequence check.
		n.env.Send(from, simSnapAnswer{ID: m.ID, Resp: n.store.ServeSnapshotChunk(m.Req)})
	case simSnapAnswer:
		if done, ok := n.snapCalls[m.ID]; ok {
			delete(n.snapCalls, m.ID)
			if n.c.mangleChunk != nil {
				m.Resp = n.c.mangleChunk(n.id, bytes.Clone(m.Resp))
			}
			done(m.Resp, nil)
		}
	case simEvRequest:
		n.c.eventual(n, from, m)
	default:
		panic(fmt.Sprintf("node %d: unexpected %T", n.id, msg))
	}
	n.round()
}

// startSync is the store's StartSync: the sync it asks for returns
// 0.2-5 ms later, unless the node crashes first and loses what the
// rounds since the last one wrote (kvd's store syncs on a goroutine of
// its own meanwhile, kv/store/syncs.go).
//
// With syncCrashes, one sync in 20 ends in a crash instead, as long as a
// majority stays up (or crashAll): after the rounds it covers answered
// their clients and sent their appends.
func (n *simNode) startSync() {
	if n.c.holdSyncs == n.id {
		return
	}
	d := 200*time.Microsecond + time.Duration(n.env.Rand().Int64N(int64(4800*time.Microsecond)))
	n.env.After(d, func() {
		if c := n.c; c.syncCrashes && c.s.Rand().IntN(20) == 0 && (c.crashAll || c.oneMoreMayCrash()) {
			c.crashInRound(n)
			return
		}
		if err := n.store.FinishSync(); err != nil {
			panic(fmt.Sprintf("node %d: %v", n.id, err))
		}
		n.round()
	})
}

// round is the loop's Store.HandleReady and the transport's flush.
func (n *simNode) round() {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(syncCrash); !ok {
				panic(r)
			}
			n.c.crashInRound(n)
		}
	}()
	if err := n.store.HandleReady(); err != nil {
		panic(fmt.Sprintf("node %d: %v", n.id, err))
	}
	n.tr.flush()
	n.c.dirty[n.id] = true
}

// Stop closes the crashed incarnation's Pebble (on the file system the
// crash left behind, which nothing reads again).
func (n *simNode) Stop() {
	if n.store != nil {
		n.store.Abandon() // a transfer's sstable writer runs a goroutine
	}
	if n.db != nil {
		n.db.Close()
		n.db = nil
	}
}

// serve starts a client's request as the API would: route the key, then
// propose or read on this node's replica, answering from the round that
// applies or confirms it.
func (n *simNode) serve(from sim.NodeID, req simRequest) {
	reply := func(r simReply) {
		r.Seq, r.Attempt = req.Seq, req.Attempt
		n.env.Send(from, r)
	}
	key := []byte(strings.TrimPrefix(req.In.Key, req.Keyspace+"/"))
	rd, err := n.node.Route(req.Keyspace, key)
	switch {
	case errors.Is(err, catalog.ErrNoKeyspace):
		// A node that just joined may not hold the catalog yet: kvd's API
		// waits for it (Node.AwaitKeyspace), and answers Unavailable when it
		// cannot; the clients' keyspaces all exist.
		reply(simReply{Unavailable: true})
		return
	case err != nil:
		reply(simReply{Unexpected: err.Error()})
		return
	}
	if req.In.Op == sim.OpGet {
		err = n.store.StartRead(rd.ID, func(err error) {
			if err != nil {
				reply(n.refusal(rd, err))
				return
			}
			kv, err := n.node.getApplied(req.Keyspace, rd, key)
			switch {
			case errors.Is(err, store.ErrKeyMoved):
				reply(simReply{Unavailable: true}) // the API routes it again
			case errors.Is(err, catalog.ErrKeyNotFound):
				reply(simReply{Done: true})
			case err != nil:
				reply(simReply{Unexpected: err.Error()})
			default:
				reply(simReply{Done: true, Out: sim.KVOutput{Found: true, Value: string(kv.Value)}})
			}
		})
	} else {
		var id uint64
		cmd := simCommand(req.In, key)
		cmd.IdemKey = []byte(req.IdemKey)
		id, err = n.store.StartPropose(rd.ID, cmd, func(res command.Result) {
			switch {
			case res.Err == nil:
				reply(simReply{Done: true, Out: sim.KVOutput{Swapped: req.In.Op == sim.OpCAS}})
			case errors.Is(res.Err, command.ErrConditionFailed) && req.In.Op == sim.OpCAS:
				reply(simReply{Done: true})
			case errors.Is(res.Err, store.ErrOutcomeUnknown):
				reply(simReply{Unknown: true})
			case errors.Is(res.Err, store.ErrKeyMoved):
				reply(simReply{Unavailable: true}) // nothing written; the API routes it again
			default:
				reply(simReply{Unexpected: res.Err.Error()})
			}
		})
		if err == nil {
			// As propose does when its context ends.
			n.env.After(simOpTimeout, func() { n.store.ForgetProposal(rd.ID, id) })
		}
	}
	if err != nil {
		reply(n.refusal(rd, err))
	}
}

// refusal answers a request that did nothing here.
func (n *simNode) refusal(rd *catalog.RangeDescriptor, err error) simReply {
	var nl *store.NotLeaderError
	switch {
	case errors.As(err, &nl):
		return simReply{NotLeader: true, Hint: nl.Leader}
	case errors.Is(err, store.ErrNoReplicaHere):
		// The API forwards to the range's replicas; the client goes there.
		return simReply{NotLeader: true, Hint: rd.Replicas[n.env.Rand().IntN(len(rd.Replicas))].NodeID}
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, store.ErrStopped):
		return simReply{Unavailable: true}
	}
	return simReply{Unexpected: err.Error()}
}

// simCommand is the command Node's Put, Delete and CompareAndSwap propose.
func simCommand(in sim.KVInput, key []byte) *command.Command {
	switch in.Op {
	case sim.OpPut:
		return &command.Command{Op: command.OpPut, Key: key, Value: []byte(in.Value)}
	case sim.OpDelete:
		return &command.Command{Op: command.OpDelete, Key: key}
	case sim.OpCAS:
		if in.ExpectAbsent {
			return &command.Command{Op: command.OpCAS, Key: key, Value: []byte(in.Value), Cond: command.CondAbsent}
		}
		return &command.Command{Op: command.OpCAS, Key: key, Value: []byte(in.Value), Cond: command.CondValue, ExpectValue: []byte(in.Expect)}
	}
	panic(fmt.Sprintf("no command for %v", in))
}

// simReplicaNet is the eventual.ReplicaNet of one incarnation: a request to
// another node crosses the simulated network as a simReplicaCall and is
// answered by a simReplicaAnswer; one to itself runs as the next event.
// An answer that does not come within the replica timeout is an error,
// and a late one is ignored, as goNet's context does.
type simReplicaNet struct {
	n     *simNode
	calls map[uint64]func(eventual.ReplicaAnswer)
}

// simReplicaCall is a replica request in flight; simReplicaAnswer its
// answer. The network may duplicate either: a replica runs a call once,
// as the peer stream does (simNode.served), and an answer counts once.
type simReplicaCall struct {
	ID  uint64
	Req eventual.ReplicaRequest
}

type simReplicaAnswer struct {
	ID     uint64
	Answer eventual.ReplicaAnswer
}

func (m simReplicaCall) String() string {
	r := m.Req
	s := fmt.Sprintf("call %d: r%d %v", m.ID, r.RangeID, r.Kind)
	switch r.Kind {
	case eventual.ReqWrite:
		s += fmt.Sprintf(" %q=%s", r.Key, describeRecord(r.Rec))
	case eventual.ReqRead:
		s += fmt.Sprintf(" %q", r.Key)
	case eventual.ReqCAS:
		s += fmt.Sprintf(" %q %v ballot %v", r.Key, r.Cas.Type, r.Cas.Ballot)
	case eventual.ReqLeafRecords:
		s += fmt.Sprintf(" %d leaves", len(r.Leaves))
	}
	return s
}

func (m simReplicaAnswer) String() string {
	a := m.Answer
	switch {
	case a.Err != nil:
		return fmt.Sprintf("answer %d: %v", m.ID, a.Err)
	case a.Hashes != nil:
		return fmt.Sprintf("answer %d: %d leaf hashes", m.ID, len(a.Hashes))
	case a.Recs != nil:
		return fmt.Sprintf("answer %d: %d records", m.ID, len(a.Recs))
	case a.Cas.Type != 0:
		return fmt.Sprintf("answer %d: %v reject=%v", m.ID, a.Cas.Type, a.Cas.Reject)
	}
	return fmt.Sprintf("answer %d: %s existed=%v", m.ID, describeRecord(a.Rec), a.Existed)
}

func (s *simReplicaNet) Call(to uint64, req eventual.ReplicaRequest, done func(eventual.ReplicaAnswer)) {
	n := s.n
	n.c.callSeq++
	id := n.c.callSeq
	timer := n.env.After(simReplicaTimeout, func() {
		s.answer(id, eventual.ReplicaAnswer{Err: fmt.Errorf("%w: node %d: no answer to a %v request in %v", store.ErrUnavailable, to, req.Kind, simReplicaTimeout)})
	})
	s.calls[id] = func(a eventual.ReplicaAnswer) {
		timer.Stop()
		done(a)
	}
	switch {
	case to == n.id:
		n.env.After(0, func() { s.answer(id, n.node.ev.ServeReplica(req)) })
	case n.c.added[to]:
		n.env.Send(sim.NodeID(to), simReplicaCall{ID: id, Req: req})
	}
}

// answer delivers a request's answer, once.
func (s *simReplicaNet) answer(id uint64, a eventual.ReplicaAnswer) {
	if done, ok := s.calls[id]; ok {
		delete(s.calls, id)
		done(a)
	}
}

func (s *simReplicaNet) After(d time.Duration, f func()) { s.n.env.After(d, f) }

// simPeerMsg is one encoded peer message of a range.
type simPeerMsg struct {
	rangeID uint64
	msg     []byte
}

// simPacket is one round's peer messages from one node to another, as
// one batch of the peer stream carries them.
type simPacket struct {
	msgs []simPeerMsg
}

func (p simPacket) String() string {
	var b strings.Builder
	for i, pm := range p.msgs {
		if i > 0 {
			b.WriteString(", ")
		}
		m, err := consensus.DecodePeerMessage(bytes.Clone(pm.msg))
		switch {
		case err != nil:
			fmt.Fprintf(&b, "r%d %v", pm.rangeID, err)
		case m.Raft != nil:
			fmt.Fprintf(&b, "r%d %s", pm.rangeID, raft.DescribeMessage(*m.Raft))
		case m.Control != nil:
			fmt.Fprintf(&b, "r%d %s %d->%d term %d commit %d", pm.rangeID, m.Control.Kind, m.Control.From, m.Control.To, m.Control.Term, m.Control.Commit)
		default:
			fmt.Fprintf(&b, "r%d %v", pm.rangeID, *m.Paxos)
		}
	}
	return "[" + b.String() + "]"
}

// simTransport is the Transport of one incarnation: it batches a round's
// messages per peer, and flush sends each batch as one packet.
type simTransport struct {
	n   *simNode
	out map[uint64][]simPeerMsg
}

func (t *simTransport) Send(rangeID uint64, m consensus.PeerMessage) {
	to := m.To()
	if !t.n.c.added[to] {
		return // a node meta has registered but the sim has not started yet
	}
	if t.n.c.drop != nil && t.n.c.drop(t.n.id, rangeID, m) {
		t.n.env.Logf("test drops range %d's %s to node %d", rangeID, m.Kind(), to)
		return
	}
	t.out[to] = append(t.out[to], simPeerMsg{rangeID: rangeID, msg: consensus.EncodePeerMessage(m)})
}

func (t *simTransport) Learn(uint64, string) {}

// FetchSnapshotChunk is the SnapshotChunk peer RPC over the simulated
// network: a call and its answer are messages, which the network may
// drop (the store asks for the chunk again after its chunk timeout),
// duplicate or reorder.
func (t *simTransport) FetchSnapshotChunk(to uint64, req []byte, done func([]byte, error)) {
	if !t.n.c.added[to] {
		done(nil, fmt.Errorf("node %d is not in the simulation", to))
		return
	}
	t.n.snapSeq++
	t.n.snapCalls[t.n.snapSeq] = done
	t.n.env.Send(sim.NodeID(to), simSnapCall{ID: t.n.snapSeq, Req: bytes.Clone(req)})
}

// simSnapCall is a snapshot chunk request; simSnapAnswer its answer.
type simSnapCall struct {
	ID  uint64
	Req []byte
}

type simSnapAnswer struct {
	ID   uint64
	Resp []byte
}

func (m simSnapCall) String() string { return fmt.Sprintf("snapshot chunk call %d", m.ID) }
func (m simSnapAnswer) String() string {
	return fmt.Sprintf("snapshot chunk answer %d (%d bytes)", m.ID, len(m.Resp))
}

func (t *simTransport) flush() {
	for _, to := range slices.Sorted(maps.Keys(t.out)) {
		t.n.env.Send(sim.NodeID(to), simPacket{msgs: t.out[to]})
		delete(t.out, to)
	}
}

// simRequest is a client's operation on a key of a keyspace. In.Key is
// the history's name for the key, keyspace/key.
type simRequest struct {
	Seq, Attempt uint64
	Keyspace     string
	In           sim.KVInput
	// IdemKey is a write's idempotency key, the same in every attempt.
	IdemKey string
}

// simReply answers a simRequest. Exactly one of the flags is set.
type simReply struct {
	Seq, Attempt uint64
	Done         bool
	Out          sim.KVOutput
	// NotLeader: nothing was done; Hint is the node to try (0: unknown).
	NotLeader bool
	Hint      uint64
	// Unavailable: nothing was done; try again later.
	Unavailable bool
	// Unknown: the write was proposed but its replica went away.
	Unknown bool
	// Unexpected is an error no correct node returns.
	Unexpected string
}

// simClient issues random operations, one at a time, to the node it
// believes leads the key's range, and retries as the real client and
// server do together: it follows hints; it resends an operation that
// found no leader, whose node went silent, or whose outcome the node
// says is unknown (a leader that stepped down), to another node, a write
// with the same idempotency key, which the ranges apply at most once
// (kv/store/dedup.go); and it gives up after simOpTimeout with the outcome
// unknown.
type simClient struct {
	c         *simCluster
	env       *sim.Env
	id        uint64
	seq       uint64
	op        *simPending
	stopped   bool
	completed int
	// script, if scripted, are the client's last operations.
	script   []simRequest
	scripted bool
	// hints are the last known leader per key.
	hints  map[string]uint64
	seen   map[string]string
	writes int
}

type simPending struct {
	req      simRequest
	hist     *sim.Op
	deadline *sim.Timer
	retry    *sim.Timer
}

func (c *simCluster) startClients() {
	for i := range simClients {
		id := uint64(simClientID + i + 1)
		cl := &simClient{c: c, id: id, hints: map[string]uint64{}, seen: map[string]string{}}
		c.addClient(id, cl, func(env *sim.Env) { cl.env = env }, func() { cl.next() })
		c.clients = append(c.clients, cl)
	}
}

// addClient adds client process p as sim node id, on links to every
// node that lose nothing; when it starts, it is given its env, and next
// runs a few random milliseconds later.
func (c *simCluster) addClient(id uint64, p sim.Process, setEnv func(*sim.Env), next func()) {
	c.s.AddNode(sim.NodeID(id), func(env *sim.Env) sim.Process {
		setEnv(env)
		env.After(time.Duration(env.Rand().IntN(10))*time.Millisecond, next)
		return p
	})
	for _, n := range c.ids {
		link := sim.LinkConfig{MinDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}
		c.s.Net().SetLink(sim.NodeID(id), sim.NodeID(n), link)
		c.s.Net().SetLink(sim.NodeID(n), sim.NodeID(id), link)
	}
}

func (cl *simClient) rand(n int) int { return cl.env.Rand().IntN(n) }

func (cl *simClient) next() {
	if cl.stopped || cl.op != nil {
		return
	}
	var req simRequest
	switch {
	case len(cl.script) > 0:
		req, cl.script = cl.script[0], cl.script[1:]
	case cl.scripted:
		cl.stopped = true // the script is done
		return
	default:
		req = cl.draw()
	}
	cl.seq++
	req.Seq = cl.seq
	if req.In.Op != sim.OpGet {
		req.IdemKey = fmt.Sprintf("c%d-%d", cl.id, cl.seq)
	}
	op := &simPending{req: req, hist: cl.c.h.Invoke(sim.NodeID(cl.id), req.In)}
	cl.op = op
	op.deadline = cl.env.After(simOpTimeout, func() {
		op.hist.Unknown()
		cl.finish()
	})
	cl.attempt(cl.hints[req.In.Key])
}

// attempt sends the operation to target, or to a random node if 0 or if
// target does not run yet: a node the catalog registered (c.join) before
// the simulation started it, which a hint may name, as a real client
// could not dial it and would try another.
func (cl *simClient) attempt(target uint64) {
	op := cl.op
	if target == 0 || !cl.c.added[target] {
		running := slices.DeleteFunc(slices.Clone(cl.c.ids), func(id uint64) bool { return !cl.c.added[id] })
		target = running[cl.rand(len(running))]
	}
	op.req.Attempt++
	cl.env.Send(sim.NodeID(target), op.req)
	op.retry = cl.env.After(simRetry, func() { cl.attempt(0) })
}

func (cl *simClient) Receive(from sim.NodeID, msg any) {
	r, ok := msg.(simReply)
	op := cl.op
	if !ok || op == nil || r.Seq != cl.seq {
		return // a late answer to an operation already finished
	}
	if !r.Done && r.Attempt != op.req.Attempt {
		return // a refusal of an attempt superseded since
	}
	key := op.req.In.Key
	switch {
	case r.NotLeader, r.Unavailable:
		op.retry.Stop()
		target, wait := r.Hint, time.Duration(1+cl.rand(5))*time.Millisecond
		if target == 0 || target == uint64(from) {
			// An election is on: give it time rather than spin.
			target, wait = 0, time.Duration(10+cl.rand(20))*time.Millisecond
		}
		cl.hints[key] = target
		op.retry = cl.env.After(wait, func() { cl.attempt(target) })
		return
	case r.Unknown:
		// The leader stepped down before the write was applied: it may
		// be applied yet. Try again with the same key.
		op.retry.Stop()
		op.retry = cl.env.After(time.Duration(1+cl.rand(5))*time.Millisecond, func() { cl.attempt(0) })
		return
	case r.Unexpected != "":
		cl.c.unexpected = append(cl.c.unexpected, fmt.Sprintf("node %d answered %v with %q", from, op.req.In, r.Unexpected))
		op.hist.Unknown()
	default:
		cl.hints[key] = uint64(from)
		switch {
		case op.req.In.Op == sim.OpGet && r.Out.Found:
			cl.seen[key] = r.Out.Value
		case op.req.In.Op == sim.OpPut || (op.req.In.Op == sim.OpCAS && r.Out.Swapped):
			cl.seen[key] = op.req.In.Value
		}
		op.hist.Return(r.Out)
		cl.completed++
	}
	cl.finish()
}

func (cl *simClient) finish() {
	op := cl.op
	op.deadline.Stop()
	op.retry.Stop()
	cl.op = nil
	// Think time, so clients interleave differently on every seed.
	cl.env.After(time.Duration(cl.rand(15))*time.Millisecond, cl.next)
}

// draw picks the next operation. Written values are unique, which lets
// porcupine tell writes apart.
func (cl *simClient) draw() simRequest {
	ks := cl.c.keyspaces[cl.rand(len(cl.c.keyspaces))].Name
	key := simKey(ks, cl.rand(cl.c.numKeys()))
	val := func() string {
		cl.writes++
		return fmt.Sprintf("c%d-%d", cl.id, cl.writes)
	}
	var in sim.KVInput
	switch p := cl.rand(100); {
	case p < 40:
		in = sim.KVGet(key)
	case p < 70:
		in = sim.KVPut(key, val())
	case p < 78:
		in = sim.KVDelete(key)
	case p < 84:
		in = sim.KVCASAbsent(key, val())
	default:
		expect, ok := cl.seen[key]
		if !ok || cl.rand(4) == 0 {
			expect = fmt.Sprintf("c%d-%d", simClientID+1+cl.rand(simClients), 1+cl.rand(max(1, cl.writes)))
		}
		in = sim.KVCAS(key, expect, val())
	}
	return simRequest{Keyspace: ks, In: in}
}

// A leader hands each of its raft and paxos ranges to another voter
// without an election timeout, over the real peer codec: the new leader
// leads within a few message delays, one term or ballot round above the
// old (a transfer that lost its Transfer mark on the wire would be
// refused, and the range would wait out a timeout and a second round).
func TestSimTransferLeaderships(t *testing.T) {
	c := newSimCluster(t, 3, 3)
	for _, ks := range simKeyspaces {
		for _, rd := range c.node(1).store.Catalog().Ranges[ks.Name] {
			old := c.rangeLeader(rd.ID)
			n := c.node(old)
			round := func(id uint64) uint64 { return c.node(id).store.Replicas[rd.ID].Core.Status().Term }
			before := round(old)
			if !n.store.Replicas[rd.ID].Core.TransferLeader(old, func(uint64) bool { return true }) {
				t.Fatalf("range %d (%s): node %d did not start a transfer", rd.ID, ks.Name, old)
			}
			n.round()
			start := c.s.Now()
			c.require(fmt.Sprintf("range %d (%s) to move from node %d", rd.ID, ks.Name, old), 60*time.Millisecond, func() bool {
				l := c.rangeLeader(rd.ID)
				return l != 0 && l != old
			})
			if now := c.rangeLeader(rd.ID); round(now) != before+1 {
				t.Errorf("range %d (%s): node %d leads at round %d after node %d led at %d: more than one election",
					rd.ID, ks.Name, now, round(now), old, before)
			}
			t.Logf("range %d (%s): node %d -> %d in %v", rd.ID, ks.Name, old, c.rangeLeader(rd.ID), c.s.Now()-start)
		}
	}
}
