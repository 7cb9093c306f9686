package raft

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// env is a deterministic in-memory cluster for tests: nodes with a
// MemoryStorage that holds exactly what they persisted, a network that
// queues messages until a test delivers them, partitions, and crashes that
// keep only the persisted state. It checks invariants as it goes.
type env struct {
	t     testing.TB
	out   *strings.Builder
	nodes map[uint64]*envNode
	// inbox holds sent messages per recipient, in send order.
	inbox map[uint64][]Message
	// cut[from][to] drops messages on that link.
	cut  map[[2]uint64]bool
	seed uint64
	// leaders records the leader of each Term ever seen: at most one.
	leaders map[uint64]uint64
	// committed records every committed entry seen applied, by index:
	// every node must apply the same entry at an index.
	committed map[uint64]Entry
	quiet     bool // no Ready/message output (benchmarks, random tests)
	canaries  canaries
	// filter, if set, drops the messages it returns true for.
	filter func(Message) bool
	// collect records invariant violations instead of failing the test:
	// canary tests expect them.
	collect    bool
	violations []string
}

// violation reports a broken invariant.
func (e *env) violation(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if e.collect {
		e.violations = append(e.violations, msg)
		return
	}
	e.t.Error(msg)
}

type envNode struct {
	id      uint64
	rn      *RawNode
	storage *MemoryStorage
	cfg     Config
	// applied is the application state: the entries applied, by index
	// (index 0 unused). A snapshot covers applied[:snapIndex+1].
	applied []Entry
	crashed bool
	reads   []ReadState
	// holdAt, if set, is an index the application stops before, as
	// kv/store stops at a split (RawNode.AdvancePaused): the entries from
	// it on wait until the test clears it and calls ResumeApply.
	holdAt uint64
}

func newEnv(t testing.TB) *env {
	return &env{
		t: t, out: &strings.Builder{}, nodes: map[uint64]*envNode{}, inbox: map[uint64][]Message{},
		cut: map[[2]uint64]bool{}, leaders: map[uint64]uint64{}, committed: map[uint64]Entry{},
	}
}

// envHandler writes log records as "INFO msg" lines into the env output.
type envHandler struct{ e *env }

func (h envHandler) Enabled(context.Context, slog.Level) bool { return !h.e.quiet }
func (h envHandler) Handle(_ context.Context, r slog.Record) error {
	fmt.Fprintf(h.e.out, "%s %s\n", r.Level, r.Message)
	return nil
}
func (h envHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h envHandler) WithGroup(string) slog.Handler      { return h }

func (e *env) printf(format string, args ...any) {
	if !e.quiet {
		fmt.Fprintf(e.out, format, args...)
	}
}

// ids returns the node IDs in order.
func (e *env) ids() []uint64 {
	ids := make([]uint64, 0, len(e.nodes))
	for id := range e.nodes {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// addNode creates node id with cfg as a template; cs, if it has voters,
// bootstraps its storage.
func (e *env) addNode(id uint64, cfg Config, cs *ConfState) {
	st := NewMemoryStorage()
	if cs != nil {
		if err := st.Bootstrap(*cs); err != nil {
			e.t.Fatal(err)
		}
	}
	cfg.ID = id
	cfg.Storage = st
	cfg.Logger = slog.New(envHandler{e})
	cfg.canaries = e.canaries
	n := &envNode{id: id, storage: st, cfg: cfg, applied: make([]Entry, 1)}
	e.nodes[id] = n
	e.start(n)
}

func (e *env) start(n *envNode) {
	cfg := n.cfg
	cfg.Rand = rand.New(rand.NewPCG(e.seed, n.id))
	snap, _ := n.storage.Snapshot()
	// The application state survives up to the snapshot only.
	n.applied = n.applied[:min(uint64(len(n.applied)), snap.Metadata.Index+1)]
	for uint64(len(n.applied)) < snap.Metadata.Index+1 {
		n.applied = append(n.applied, Entry{})
	}
	cfg.Applied = snap.Metadata.Index
	if bootstrapped(n.storage) && len(n.applied) == 1 {
		// The bootstrap entry holds no application data: the application
		// counts it applied, so the node starts in its first configuration.
		ents, _ := n.storage.Entries(1, 2, noLimit)
		n.applied = append(n.applied, ents[0])
		e.checkCommitted(n.id, ents[0])
		cfg.Applied = 1
	}
	rn, err := NewRawNode(cfg)
	if err != nil {
		e.t.Fatalf("node %d: %v", n.id, err)
	}
	n.rn, n.crashed = rn, false
}

// bootstrapped reports whether st starts with the bootstrap entry.
func bootstrapped(st *MemoryStorage) bool {
	first, _ := st.FirstIndex()
	last, _ := st.LastIndex()
	if first != 1 || last < 1 {
		return false
	}
	t, _ := st.Term(1)
	return t == 1
}

func (e *env) node(id uint64) *envNode {
	n, ok := e.nodes[id]
	if !ok {
		e.t.Fatalf("no node %d", id)
	}
	return n
}

// processReady handles one Ready of node id: persist, send, apply, Advance.
func (e *env) processReady(id uint64) bool {
	n := e.node(id)
	if n.crashed || !n.rn.HasReady() {
		return false
	}
	prev, _, err := n.storage.InitialState()
	if err != nil {
		e.t.Fatalf("node %d: %v", id, err)
	}
	rd := n.rn.Ready()
	// MustSync exactly when something a message may depend on changes:
	// entries, a snapshot, the term or the vote (not the commit alone).
	hs := prev
	if !rd.HardState.IsEmpty() {
		hs = rd.HardState
	}
	if want := len(rd.Entries) > 0 || !rd.Snapshot.IsEmpty() || hs.Term != prev.Term || hs.Vote != prev.Vote; rd.MustSync != want {
		e.t.Fatalf("node %d: Ready with %d entries, snapshot %v, hard state %+v after %+v: MustSync %v, want %v",
			id, len(rd.Entries), !rd.Snapshot.IsEmpty(), rd.HardState, prev, rd.MustSync, want)
	}
	e.printf("> %d handling Ready\n", id)
	e.printf("%s", indent(DescribeReady(rd)))
	// 1. Persist.
	if !rd.Snapshot.IsEmpty() {
		if err := n.storage.ApplySnapshot(rd.Snapshot); err != nil {
			e.t.Fatalf("node %d: %v", id, err)
		}
	}
	if err := n.storage.Append(rd.Entries); err != nil {
		e.t.Fatalf("node %d: %v", id, err)
	}
	if !rd.HardState.IsEmpty() {
		_ = n.storage.SetHardState(rd.HardState)
	}
	// 2. Send.
	for _, m := range rd.Messages {
		e.sendMsg(m)
	}
	// 3. Apply.
	if !rd.Snapshot.IsEmpty() {
		idx := rd.Snapshot.Metadata.Index
		n.applied = n.applied[:min(uint64(len(n.applied)), idx+1)]
		for uint64(len(n.applied)) <= idx {
			n.applied = append(n.applied, e.committed[uint64(len(n.applied))])
		}
	}
	held := false
	for _, ent := range rd.CommittedEntries {
		if n.holdAt != 0 && ent.Index >= n.holdAt {
			held = true
			break
		}
		if ent.Index != uint64(len(n.applied)) {
			e.t.Fatalf("node %d applies %d after %d", id, ent.Index, len(n.applied)-1)
		}
		n.applied = append(n.applied, ent)
		e.checkCommitted(id, ent)
	}
	n.reads = append(n.reads, rd.ReadStates...)
	if rd.SoftState != nil && rd.SoftState.State == StateLeader {
		e.checkLeader(id, n.rn.raft.Term)
	}
	if held {
		n.rn.AdvancePaused(uint64(len(n.applied)) - 1)
	} else {
		n.rn.Advance()
	}
	return true
}

func (e *env) checkLeader(id, term uint64) {
	if l, ok := e.leaders[term]; ok {
		if l != id {
			e.violation("two leaders in term %d: %d and %d", term, l, id)
			e.leaders[term] = id
		}
		return
	}
	e.leaders[term] = id
}

func (e *env) checkCommitted(id uint64, ent Entry) {
	prev, ok := e.committed[ent.Index]
	if ok && (prev.Term != ent.Term || string(prev.Data) != string(ent.Data) || prev.Type != ent.Type) {
		e.violation("node %d applied %s at index %d, another node applied %s",
			id, DescribeEntry(ent), ent.Index, DescribeEntry(prev))
	}
	e.committed[ent.Index] = ent
}

func (e *env) sendMsg(m Message) {
	if e.cut[[2]uint64{m.From, m.To}] || (e.filter != nil && e.filter(m)) {
		e.printf("  dropped: %s\n", DescribeMessage(m))
		return
	}
	if n, ok := e.nodes[m.To]; !ok || n.crashed {
		return
	}
	e.inbox[m.To] = append(e.inbox[m.To], m)
}

// deliver steps every queued message into node id; it returns how many.
func (e *env) deliver(id uint64) int {
	msgs := e.inbox[id]
	delete(e.inbox, id)
	n := e.node(id)
	for _, m := range msgs {
		if n.crashed {
			continue
		}
		e.printf("%s\n", DescribeMessage(m))
		if err := n.rn.Step(m); err != nil {
			e.t.Fatalf("node %d: step %s: %v", id, DescribeMessage(m), err)
		}
		// Also check leadership changes that happen inside Step.
		if n.rn.raft.state == StateLeader {
			e.checkLeader(id, n.rn.raft.Term)
		}
	}
	return len(msgs)
}

// stabilize processes Readies and delivers messages among ids until
// nothing is left to do.
func (e *env) stabilize(ids ...uint64) {
	if len(ids) == 0 {
		ids = e.ids()
	}
	for round := 0; ; round++ {
		if round > 10000 {
			e.violation("stabilize does not converge (livelock)")
			return
		}
		done := true
		for _, id := range ids {
			if e.processReady(id) {
				done = false
			}
		}
		for _, id := range ids {
			if len(e.inbox[id]) > 0 {
				e.printf("> %d receiving messages\n", id)
				e.deliver(id)
				done = false
			}
		}
		if done {
			return
		}
	}
}

// crash loses everything node id did not persist: its RawNode, its queued
// messages and the application state after its snapshot.
func (e *env) crash(id uint64) {
	n := e.node(id)
	n.crashed = true
	n.rn = nil
	delete(e.inbox, id)
}

func (e *env) restart(id uint64) {
	n := e.node(id)
	if !n.crashed {
		e.crash(id)
	}
	e.start(n)
}

// partition cuts every link between the groups.
func (e *env) partition(groups ...[]uint64) {
	e.cut = map[[2]uint64]bool{}
	for i, g := range groups {
		for j, h := range groups {
			if i == j {
				continue
			}
			for _, a := range g {
				for _, b := range h {
					e.cut[[2]uint64{a, b}] = true
				}
			}
		}
	}
}

func (e *env) heal() { e.cut = map[[2]uint64]bool{} }

// leader returns the node that believes it leads the highest Term, or 0.
func (e *env) leader() uint64 {
	var lead, term uint64
	for _, id := range e.ids() {
		n := e.nodes[id]
		if !n.crashed && n.rn.raft.state == StateLeader && n.rn.raft.Term >= term {
			lead, term = id, n.rn.raft.Term
		}
	}
	return lead
}

func indent(s string) string {
	if s == "" {
		return ""
	}
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	return "  " + strings.Join(lines, "\n  ") + "\n"
}

// majorityConf returns a majority configuration of voters 1..n.
func majorityConf(n int) ConfState {
	cs := ConfState{Geometry: "majority"}
	for i := 1; i <= n; i++ {
		cs.Voters = append(cs.Voters, Member{ID: uint64(i)})
	}
	return cs
}

// newCluster starts nodes 1..len(cs.Voters) bootstrapped with cs.
func newCluster(t testing.TB, cs ConfState, cfg Config) *env {
	e := newEnv(t)
	e.quiet = true
	for _, m := range cs.Voters {
		e.addNode(m.ID, cfg, &cs)
	}
	return e
}
