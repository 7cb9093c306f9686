package paxos_test

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/quorumkv/quorumkv/paxos"
	"github.com/quorumkv/quorumkv/quorum"
)

// msgFilter picks queued messages by from=, to= and type= arguments
// (each optional, each a comma-separated list).
type msgFilter struct {
	from, to []uint64
	types    []string
}

func parseFilter(t *testing.T, d *datadriven.TestData) msgFilter {
	var f msgFilter
	for _, arg := range d.CmdArgs {
		switch arg.Key {
		case "from":
			f.from = parseIDs(t, arg.Vals)
		case "to":
			f.to = parseIDs(t, arg.Vals)
		case "type":
			f.types = arg.Vals
		}
	}
	return f
}

func parseIDs(t *testing.T, vals []string) []uint64 {
	var out []uint64
	for _, v := range vals {
		for _, s := range strings.Split(v, ",") {
			id, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
			if err != nil {
				t.Fatalf("bad node id %q", s)
			}
			out = append(out, id)
		}
	}
	return out
}

func (f msgFilter) match(from, to uint64, typ string) bool {
	return (f.from == nil || slices.Contains(f.from, from)) &&
		(f.to == nil || slices.Contains(f.to, to)) &&
		(f.types == nil || slices.Contains(f.types, typ))
}

func argIDs(t *testing.T, d *datadriven.TestData, key string) []uint64 {
	for _, arg := range d.CmdArgs {
		if arg.Key == key {
			return parseIDs(t, arg.Vals)
		}
	}
	return nil
}

func argString(d *datadriven.TestData, key, def string) string {
	for _, arg := range d.CmdArgs {
		if arg.Key == key {
			return strings.Join(arg.Vals, ",")
		}
	}
	return def
}

func argInt(t *testing.T, d *datadriven.TestData, key string, def int) int {
	s := argString(d, key, "")
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%s=%q: %v", key, s, err)
	}
	return n
}

// TestBasicScripts runs testdata/basic: Basic Paxos, one message at a time.
//
//	acceptors n=3 [geometry=G]   acceptors 1..n; proposers are 101, 102...
//	propose p=101 value=V        SetOnce(V): phase 1 at a fresh ballot
//	cas p=101 expect=E value=V   CompareAndSet(E, V) (expect=none: must be missing)
//	deliver [from=] [to=] [type=]  deliver matching queued messages, in order
//	drop [from=] [to=] [type=]     lose them
//	crash a=2                    restart acceptor 2 from its persisted state
//	state                        acceptor states and proposer outcomes
func TestBasicScripts(t *testing.T) {
	datadriven.Walk(t, "testdata/basic", func(t *testing.T, path string) {
		var h *basicHarness
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			if d.Cmd == "acceptors" {
				h = newBasicHarness(t, argInt(t, d, "n", 3), argString(d, "geometry", "majority"))
				return "ok\n"
			}
			return h.run(t, d)
		})
	})
}

type basicHarness struct {
	sys       quorum.System
	acceptors map[uint64]*paxos.Acceptor
	persisted map[uint64]paxos.AcceptorState
	proposers map[uint64]*paxos.Proposer
	queue     []paxos.BasicMessage
	out       strings.Builder
}

func newBasicHarness(t *testing.T, n int, geometry string) *basicHarness {
	l, err := quorum.ParseNodeList(strconv.Itoa(n))
	if err != nil {
		t.Fatal(err)
	}
	sys, err := quorum.Parse(geometry, l.Nodes)
	if err != nil {
		t.Fatal(err)
	}
	h := &basicHarness{sys: sys, acceptors: map[uint64]*paxos.Acceptor{}, persisted: map[uint64]paxos.AcceptorState{}, proposers: map[uint64]*paxos.Proposer{}}
	for _, id := range sys.Voters() {
		h.acceptors[id] = paxos.NewAcceptor(id, paxos.AcceptorState{})
	}
	return h
}

func (h *basicHarness) proposer(id uint64) *paxos.Proposer {
	if h.proposers[id] == nil {
		h.proposers[id] = paxos.NewProposer(id, h.sys)
	}
	return h.proposers[id]
}

func (h *basicHarness) send(ms []paxos.BasicMessage) {
	for _, m := range ms {
		fmt.Fprintf(&h.out, "  %v\n", m)
	}
	h.queue = append(h.queue, ms...)
}

func (h *basicHarness) run(t *testing.T, d *datadriven.TestData) string {
	h.out.Reset()
	switch d.Cmd {
	case "propose", "cas":
		id := argIDs(t, d, "p")[0]
		update := paxos.SetOnce([]byte(argString(d, "value", "")))
		if d.Cmd == "cas" {
			expect := argString(d, "expect", "none")
			update = paxos.CompareAndSet([]byte(expect), expect == "none", []byte(argString(d, "value", "")))
		}
		h.send(h.proposer(id).Propose(update))
	case "deliver", "drop":
		f := parseFilter(t, d)
		var rest, picked []paxos.BasicMessage
		for _, m := range h.queue {
			if f.match(m.From, m.To, m.Type.String()) {
				picked = append(picked, m)
			} else {
				rest = append(rest, m)
			}
		}
		h.queue = rest
		for _, m := range picked {
			if d.Cmd == "drop" {
				fmt.Fprintf(&h.out, "dropped %v\n", m)
				continue
			}
			h.deliver(m)
		}
	case "crash":
		for _, id := range argIDs(t, d, "a") {
			h.acceptors[id] = paxos.NewAcceptor(id, h.persisted[id])
			fmt.Fprintf(&h.out, "acceptor %d restarted from promised %v accepted %v\n", id, h.persisted[id].Promised, h.persisted[id].Accepted)
		}
	case "state":
		for _, id := range h.sys.Voters() {
			st := h.acceptors[id].State()
			fmt.Fprintf(&h.out, "acceptor %d: promised %v", id, st.Promised)
			if !st.Accepted.IsZero() {
				fmt.Fprintf(&h.out, " accepted %v=%q", st.Accepted, st.Value)
			}
			fmt.Fprintln(&h.out)
		}
		for _, id := range slices.Sorted(mapKeysP(h.proposers)) {
			fmt.Fprintf(&h.out, "proposer %d: %s\n", id, outcomeString(h.proposers[id]))
		}
	default:
		t.Fatalf("unknown command %q", d.Cmd)
	}
	if h.out.Len() == 0 {
		return "ok\n"
	}
	return h.out.String()
}

func (h *basicHarness) deliver(m paxos.BasicMessage) {
	if a, ok := h.acceptors[m.To]; ok {
		rd := a.Step(m)
		if rd.Persist {
			h.persisted[m.To] = rd.State
		}
		h.send(rd.Messages)
		return
	}
	p := h.proposer(m.To)
	_, wasDone := p.Outcome()
	h.send(p.Step(m))
	if o, done := p.Outcome(); done && !wasDone {
		fmt.Fprintf(&h.out, "proposer %d: %s\n", m.To, outcomeString(p))
		_ = o
	}
}

func outcomeString(p *paxos.Proposer) string {
	o, done := p.Outcome()
	switch {
	case !done:
		return fmt.Sprintf("ballot %v in progress", p.Ballot())
	case o.Preempted:
		return fmt.Sprintf("ballot %v preempted", o.Ballot)
	case o.Applied:
		return fmt.Sprintf("ballot %v chose %q (applied)", o.Ballot, o.Value)
	case o.Exists:
		return fmt.Sprintf("ballot %v chose %q again (not applied: condition failed)", o.Ballot, o.Value)
	}
	return fmt.Sprintf("ballot %v: no value, nothing written (condition failed)", o.Ballot)
}

func mapKeysP[V any](m map[uint64]V) func(func(uint64) bool) {
	return func(yield func(uint64) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
