package toy

// Design 9 of the article: "Naive Raft", Raft deciding one value. Five
// nodes keep a term, their vote and a log, synced to disk before they
// answer. n1 starts as the leader of term 0, which needs no election
// because nothing can precede it. A follower that hears no leader for an
// election timeout campaigns: it moves to the next term, votes for
// itself, and asks the others; a node votes at most once per term, and a
// majority of votes makes a leader. The leader writes the first buyer who
// asks into its log and sends its whole log (a few entries) to the
// others; the sale counts once a majority holds it, and then the buyer is
// told "sold" and everyone else "sold out". Followers take the leader's
// log, dropping entries of theirs that conflict with it.
//
// Two safeguards make this safe, and each run of 9a or 9b leaves one out:
//
//   - the vote check: a node refuses a candidate whose log is less up to
//     date than its own (last entry's term, then length); without it a
//     node that missed the sale can win an election (9a leaves it out);
//   - the leader's own-term entry: a new leader appends an empty entry of
//     its term and commits an entry by counting replicas only if the
//     entry is of its own term, older entries being committed with it;
//     without it a sale a majority holds can still be replaced by an
//     entry of a newer term (9b leaves it out: Raft's Figure 8).
//
// NaiveRaftSafe runs the same code with both.

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/lab"
)

const (
	nraftNodes = 5
	// nraftHeartbeat is how often a leader sends its log; followers
	// campaign after a random nraftElectionMin-nraftElectionMax without
	// one. The gap between them is several heartbeats, so a lost one does
	// not start an election.
	nraftHeartbeat   = 50 * time.Millisecond
	nraftElectionMin = 150 * time.Millisecond
	nraftElectionMax = 300 * time.Millisecond
	// nraftBuyers race. Under fault A they keep arriving over
	// nraftTrickle, as long as the fault lasts; under fault B they all
	// click within nraftRush.
	nraftBuyers  = 5
	nraftTrickle = 800 * time.Millisecond
	nraftRush    = 50 * time.Millisecond
	// nraftCut is how long fault A's partial partition lasts.
	nraftCut = time.Second
	// nraftNemesisGivesUp: if fault B's moment never comes, it heals then.
	nraftNemesisGivesUp = 5 * time.Second
	// nraftSettleWithin bounds the wait, after healing, for a leader
	// whose log every node holds and has committed: a few elections.
	nraftSettleWithin = 5 * time.Second
	// nraftStopAfter: while an election runs buyers time out (up to
	// 1.2 s in all over seeds 1..1000 of the safe design); two seconds
	// without answers would be a stop.
	nraftStopAfter = 2 * time.Second
)

// nraftPatience: a leader answers within one buyer round trip plus one
// replication round trip (40 ms at worst); elections take longer, and the
// buyer keeps trying other nodes for a few seconds.
var nraftPatience = shopPatience{Timeout: 100 * time.Millisecond, BackoffMin: 10 * time.Millisecond, BackoffMax: 30 * time.Millisecond, MaxTries: 40}

// nraftSafeguards says which of the two safeguards a run keeps.
type nraftSafeguards struct {
	VoteCheck     bool // refuse candidates whose log is less up to date
	OwnTermCommit bool // append an own-term entry on election; count only own-term entries
}

// nraftEntry is a log entry: the buyer the phone is sold to, or "" for a
// new leader's empty entry.
type nraftEntry struct {
	Term  uint64
	Buyer string
}

func (e nraftEntry) String() string {
	if e.Buyer == "" {
		return fmt.Sprintf("%d:-", e.Term)
	}
	return fmt.Sprintf("%d:%s", e.Term, e.Buyer)
}

// Messages between nodes.
type (
	nraftVote struct {
		Term      uint64
		LastTerm  uint64
		LastIndex int
	}
	nraftVoteReply struct {
		Term    uint64
		Granted bool
	}
	// nraftAppend carries the leader's whole log, from index 1, and its
	// commit index.
	nraftAppend struct {
		Term    uint64
		Entries []nraftEntry
		Commit  int
	}
	nraftAppendReply struct {
		Term  uint64
		OK    bool
		Match int // entries of the leader's log the follower now holds
	}
)

func (m nraftVote) drawn() string { return fmt.Sprintf("vote for me, term %d", m.Term) }
func (m nraftVoteReply) drawn() string {
	if m.Granted {
		return "vote yes"
	}
	return ""
}
func (m nraftAppend) drawn() string {
	for _, e := range m.Entries {
		if e.Buyer != "" {
			return fmt.Sprintf("log %v", m.Entries)
		}
	}
	return ""
}
func (nraftAppendReply) drawn() string { return "" }

// Roles.
const (
	nraftFollower = iota
	nraftCandidate
	nraftLeader
)

// nraftNode is one node. term, votedFor and log are on its disk.
type nraftNode struct {
	env   *sim.Env
	run   *nraftRun
	id    sim.NodeID
	guard nraftSafeguards

	term     uint64
	votedFor sim.NodeID
	log      []nraftEntry
	commit   int // entries known committed

	role     int
	leader   sim.NodeID
	votes    map[sim.NodeID]bool
	match    map[sim.NodeID]int
	pending  []nraftWaiting
	election *sim.Timer
	beat     *sim.Timer
}

// nraftWaiting is a buyer waiting for the sale entry to commit.
type nraftWaiting struct {
	from sim.NodeID
	req  shopBuy
}

func newNRaftNode(env *sim.Env, run *nraftRun) *nraftNode {
	n := &nraftNode{env: env, run: run, id: env.ID(), guard: run.guard}
	d := env.Disk()
	if v, ok := d.Get("term"); ok {
		if _, err := fmt.Sscan(string(v), &n.term, &n.votedFor); err != nil {
			panic(err) // we wrote it
		}
	}
	if v, ok := d.Get("log"); ok && len(v) > 0 {
		for _, line := range strings.Split(string(v), "\n") {
			var e nraftEntry
			term, buyer, _ := strings.Cut(line, " ")
			if _, err := fmt.Sscan(term, &e.Term); err != nil {
				panic(err)
			}
			e.Buyer = buyer
			n.log = append(n.log, e)
		}
	}
	if env.Incarnation() == 0 {
		// The initial configuration: n1 leads term 0 without an election.
		n.leader = run.ids[0]
		if n.id == run.ids[0] {
			// After 0, not now: the other nodes are not added yet.
			env.After(0, n.becomeLeader)
			return n
		}
	}
	n.resetElection()
	return n
}

// persist writes term, vote and log and syncs: nothing a node says
// depends on state a crash could take back.
func (n *nraftNode) persist() {
	d := n.env.Disk()
	d.Set("term", fmt.Appendf(nil, "%d %d", n.term, n.votedFor))
	lines := make([]string, len(n.log))
	for i, e := range n.log {
		lines[i] = fmt.Sprintf("%d %s", e.Term, e.Buyer)
	}
	d.Set("log", []byte(strings.Join(lines, "\n")))
	d.Sync()
}

func (n *nraftNode) resetElection() {
	if n.election != nil {
		n.election.Stop()
	}
	n.election = n.env.After(shopBetween(n.env, nraftElectionMin, nraftElectionMax), n.campaign)
}

func (n *nraftNode) lastTerm() uint64 {
	if len(n.log) == 0 {
		return 0
	}
	return n.log[len(n.log)-1].Term
}

// saleIndex returns the index in log of the first sale entry, or -1.
func (n *nraftNode) saleIndex() int {
	return slices.IndexFunc(n.log, func(e nraftEntry) bool { return e.Buyer != "" })
}

// owner is the buyer of the first committed sale entry ("" for none).
func (n *nraftNode) owner() string {
	if i := n.saleIndex(); i >= 0 && i < n.commit {
		return n.log[i].Buyer
	}
	return ""
}

func (n *nraftNode) campaign() {
	n.term++
	n.role, n.leader, n.votedFor = nraftCandidate, 0, n.id
	n.votes = map[sim.NodeID]bool{n.id: true}
	n.persist()
	n.resetElection()
	n.run.campaigned(n)
	if !n.env.Alive() {
		return
	}
	for _, p := range n.run.ids {
		if p != n.id {
			n.env.Send(p, nraftVote{Term: n.term, LastTerm: n.lastTerm(), LastIndex: len(n.log)})
		}
	}
}

// becomeFollower steps down to follower of leader (0: unknown) in term,
// which must not be below the node's own.
func (n *nraftNode) becomeFollower(term uint64, leader sim.NodeID) {
	if term < n.term {
		panic(fmt.Sprintf("invalid transition [term %d -> follower of term %d]", n.term, term))
	}
	if term > n.term {
		n.term, n.votedFor = term, 0
		n.persist()
	}
	wasLeader := n.role == nraftLeader
	if wasLeader {
		n.beat.Stop()
		for _, w := range n.pending {
			n.env.Send(w.from, shopReply{Buyer: w.req.Buyer, Try: w.req.Try, Outcome: shopElsewhere})
		}
		n.pending = nil
	}
	n.role, n.leader = nraftFollower, leader
	// Only a leader, whose election timer was stopped, starts it again:
	// a higher term alone is no sign of a working leader, and resetting
	// on it would let a candidate that cannot win keep those that can
	// from ever campaigning.
	if wasLeader {
		n.resetElection()
	}
}

func (n *nraftNode) becomeLeader() {
	if n.role == nraftLeader {
		panic("invalid transition [leader -> leader]")
	}
	n.role, n.leader = nraftLeader, n.id
	if n.election != nil {
		n.election.Stop()
	}
	n.match = map[sim.NodeID]int{}
	if n.guard.OwnTermCommit && n.term > 0 {
		n.log = append(n.log, nraftEntry{Term: n.term})
		n.persist()
	}
	n.run.led(n)
	n.broadcast()
	n.beat = n.env.Every(nraftHeartbeat, n.broadcast)
}

func (n *nraftNode) broadcast() {
	for _, p := range n.run.ids {
		if p != n.id {
			n.env.Send(p, nraftAppend{Term: n.term, Entries: slices.Clone(n.log), Commit: n.commit})
		}
	}
}

func (n *nraftNode) Receive(from sim.NodeID, msg any) {
	switch m := msg.(type) {
	case shopBuy:
		n.buy(from, m)
	case nraftVote:
		n.vote(from, m)
	case nraftVoteReply:
		if m.Term > n.term {
			n.becomeFollower(m.Term, 0)
			return
		}
		if n.role != nraftCandidate || m.Term != n.term || !m.Granted {
			return
		}
		n.votes[from] = true
		if len(n.votes) == quorumMajority(nraftNodes) {
			n.becomeLeader()
		}
	case nraftAppend:
		n.appendEntries(from, m)
	case nraftAppendReply:
		if m.Term > n.term {
			n.becomeFollower(m.Term, 0)
			return
		}
		if n.role != nraftLeader || m.Term != n.term || !m.OK {
			return
		}
		n.match[from] = max(n.match[from], m.Match)
		n.advance()
	}
}

func (n *nraftNode) vote(from sim.NodeID, m nraftVote) {
	if m.Term > n.term {
		n.becomeFollower(m.Term, 0)
	}
	upToDate := m.LastTerm > n.lastTerm() || (m.LastTerm == n.lastTerm() && m.LastIndex >= len(n.log))
	grant := m.Term == n.term && (n.votedFor == 0 || n.votedFor == from) && (upToDate || !n.guard.VoteCheck)
	if grant {
		n.votedFor = from
		n.persist()
		n.resetElection()
	}
	n.env.Send(from, nraftVoteReply{Term: n.term, Granted: grant})
}

func (n *nraftNode) appendEntries(from sim.NodeID, m nraftAppend) {
	if m.Term < n.term {
		n.env.Send(from, nraftAppendReply{Term: n.term})
		return
	}
	if m.Term > n.term || n.role != nraftFollower || n.leader != from {
		n.becomeFollower(m.Term, from)
	}
	n.resetElection()
	changed := false
	for i, e := range m.Entries {
		if i < len(n.log) && n.log[i].Term == e.Term {
			continue
		}
		if i < len(n.log) {
			n.run.truncated(n, n.log[i:], from)
		}
		n.log = append(n.log[:i:i], m.Entries[i:]...)
		// Only a broken design drops a committed entry; its commit index
		// cannot outlive the entry.
		n.commit = min(n.commit, i)
		changed = true
		break
	}
	if changed {
		n.persist()
	}
	n.commit = max(n.commit, min(m.Commit, len(m.Entries)))
	n.env.Send(from, nraftAppendReply{Term: n.term, OK: true, Match: len(m.Entries)})
}

// advance moves the leader's commit index to the longest prefix a
// majority holds, under the run's commit rule.
func (n *nraftNode) advance() {
	for i := len(n.log); i > n.commit; i-- {
		count := 1 // the leader
		for _, p := range n.run.ids {
			if p != n.id && n.match[p] >= i {
				count++
			}
		}
		if count < quorumMajority(nraftNodes) {
			continue
		}
		if n.guard.OwnTermCommit && n.log[i-1].Term != n.term {
			// Counting replicas does not commit an older term's entry: a
			// candidate whose log ends in a newer term could still win
			// and replace it. It commits with an entry of this term.
			break
		}
		n.commit = i
		break
	}
	n.answer()
}

func (n *nraftNode) buy(from sim.NodeID, m shopBuy) {
	if n.role != nraftLeader {
		n.env.Send(from, shopReply{Buyer: m.Buyer, Try: m.Try, Outcome: shopElsewhere})
		return
	}
	if i := n.saleIndex(); i >= 0 && i < n.commit {
		n.tell(from, m, n.log[i].Buyer, 0)
		return
	}
	n.pending = append(n.pending, nraftWaiting{from: from, req: m})
	if n.saleIndex() < 0 {
		n.log = append(n.log, nraftEntry{Term: n.term, Buyer: m.Buyer})
		n.persist()
		n.run.appended(n)
		if !n.env.Alive() {
			return
		}
		n.broadcast()
	}
	n.answer()
}

// answer tells the waiting buyers once the sale entry is committed.
func (n *nraftNode) answer() {
	i := n.saleIndex()
	if i < 0 || i >= n.commit {
		return
	}
	for _, w := range n.pending {
		// The buyer waited for one replication round trip.
		n.tell(w.from, w.req, n.log[i].Buyer, 1)
	}
	n.pending = nil
}

// tell answers a buyer's request, the phone being owner's.
func (n *nraftNode) tell(to sim.NodeID, req shopBuy, owner string, trips int) {
	reply := shopAnswer(req, owner, trips)
	if reply.Outcome == shopSold {
		n.run.sold(n, owner)
	}
	n.env.Send(to, reply)
}

// nraftRun is one run of design 9: the nodes, the buyers, the nemesis's
// hooks, and the moments the story tells.
type nraftRun struct {
	sale   *lab.Sale
	guard  nraftSafeguards
	ids    []sim.NodeID
	nodes  map[sim.NodeID]*nraftNode // running incarnations
	buyers []*shopBuyer

	// The nemesis's hooks, each optional: a node campaigned (its term
	// already raised), appended a sale entry to its own log (before
	// sending it), or told a buyer "sold".
	nemCampaign func(n *nraftNode)
	nemAppend   func(n *nraftNode)
	nemSold     func(n *nraftNode, buyer string)
	faultsOver  bool

	firstSold  *nraftMoment // the first "sold" a leader said
	secondSold *nraftMoment // the first "sold" to another buyer
	badLead    *nraftMoment // a leader elected without a sale told
	dropped    *nraftMoment // a node dropped a sale told
	comeback   *nraftMoment // fault B's last step: X's campaign
	// campaignsWithout counts campaigns by nodes whose log lacked the sale
	// told: the danger both safeguards exist for.
	campaignsWithout int
	notes            []nraftNote // the nemesis's moments, for the story
}

// nraftNote is a line of the story and its moment, for ordering.
type nraftNote struct {
	at   time.Duration
	line string
}

// nraftMoment is a moment of the story.
type nraftMoment struct {
	at    time.Duration
	node  sim.NodeID
	term  uint64
	buyer string
	by    sim.NodeID
	log   []nraftEntry
	entry nraftEntry // the sale entry
}

func (r *nraftRun) now() time.Duration { return r.sale.Sim.Now() }

func (r *nraftRun) campaigned(n *nraftNode) {
	if r.firstSold != nil && !slices.Contains(n.log, r.firstSold.entry) {
		r.campaignsWithout++
	}
	if r.nemCampaign != nil {
		r.nemCampaign(n)
	}
}

func (r *nraftRun) appended(n *nraftNode) {
	if r.nemAppend != nil {
		r.nemAppend(n)
	}
}

func (r *nraftRun) sold(n *nraftNode, buyer string) {
	if r.firstSold == nil {
		r.firstSold = &nraftMoment{at: r.now(), node: n.id, term: n.term, buyer: buyer, log: slices.Clone(n.log), entry: n.log[n.saleIndex()]}
	} else if buyer != r.firstSold.buyer && r.secondSold == nil {
		r.secondSold = &nraftMoment{at: r.now(), node: n.id, term: n.term, buyer: buyer, log: slices.Clone(n.log)}
		r.sale.Broke(shopNode(n.id), "sells again: "+buyer)
	}
	if r.nemSold != nil {
		r.nemSold(n, buyer)
	}
}

// led notes a leader whose log lacks the sale already told.
func (r *nraftRun) led(n *nraftNode) {
	if r.firstSold == nil || r.badLead != nil {
		return
	}
	if !slices.Contains(n.log, r.firstSold.entry) {
		r.badLead = &nraftMoment{at: r.now(), node: n.id, term: n.term, log: slices.Clone(n.log)}
		r.sale.Mark(lab.Note, shopNode(n.id), fmt.Sprintf("leads term %d without %s's sale", n.term, r.firstSold.buyer))
	}
}

// truncated notes a node dropping the sale already told.
func (r *nraftRun) truncated(n *nraftNode, dropped []nraftEntry, by sim.NodeID) {
	if r.firstSold == nil || r.dropped != nil {
		return
	}
	for _, e := range dropped {
		if e.Buyer == r.firstSold.buyer {
			r.dropped = &nraftMoment{at: r.now(), node: n.id, term: n.term, buyer: e.Buyer, by: by}
			r.sale.Broke(shopNode(n.id), fmt.Sprintf("drops %s's sale for %s's log", e.Buyer, shopNode(by)))
			return
		}
	}
}

// newNRaftRun builds the nodes and the buyers, who start asking at random
// within arrivals, each at a random node first.
func newNRaftRun(seed uint64, guard nraftSafeguards, arrivals time.Duration) *nraftRun {
	r := &nraftRun{sale: lab.NewSale(seed, sim.DefaultLink()), guard: guard, nodes: map[sim.NodeID]*nraftNode{}}
	shopDraw(r.sale)
	r.ids = shopServers(r.sale, nraftNodes)
	for _, id := range r.ids {
		r.sale.Sim.AddNode(id, func(env *sim.Env) sim.Process {
			n := newNRaftNode(env, r)
			r.nodes[id] = n
			return n
		})
	}
	s := r.sale.Sim
	r.buyers = patientBuyers(r.sale, lab.BuyerNames(nraftBuyers), nraftPatience,
		func(int) []sim.NodeID { return quorumRotated(r.ids, s.Rand().IntN(len(r.ids))) },
		func(int) time.Duration { return shopBetween(s, 0, arrivals) })
	return r
}

// partialCut is fault A: n1 cannot reach n4 and n5 for nraftCut. They
// miss the first sale and, hearing no leader, campaign.
func (r *nraftRun) partialCut() string {
	s := r.sale.Sim
	heal := s.Net().Partition(sim.Split(r.ids[:1], r.ids[3:]))
	s.After(nraftCut, func() { heal(); r.faultsOver = true })
	return fmt.Sprintf("n1 is cut off from n4 and n5, both ways, for the first %v; n2 and n3 reach everyone.", nraftCut)
}

// figure8 is fault B, Raft's Figure 8 played with crashes and
// partitions, each struck at the moment it hurts:
//
//  1. {n1,n2} and their buyers ann and bob are cut off from {n3,n4,n5}
//     and the other buyers: n1 (term 0) writes the first buyer but cannot
//     commit; the other side elects a leader X;
//  2. X appends the sale of the first buyer who reaches it and crashes
//     before sending it; the cut heals; a leader of a newer term tells a
//     buyer "sold";
//  3. at once X restarts cut off from everyone, and campaigns again and
//     again, its term climbing;
//  4. when X campaigns with a term above every other live node's, its cut
//     heals and the leader that told "sold" crashes.
//
// If step 2 never comes, the nemesis heals everything after
// nraftNemesisGivesUp.
func (r *nraftRun) figure8() string {
	s := r.sale.Sim
	step := 1
	var x, l sim.NodeID
	var healIsolation func()
	// The cut is between two datacenters, each with its own buyers: ann
	// and bob with n1 and n2, the others with n3, n4 and n5.
	left, right := slices.Clone(r.ids[:2]), slices.Clone(r.ids[2:])
	for i := range r.buyers {
		if i < 2 {
			left = append(left, sim.NodeID(101+i))
		} else {
			right = append(right, sim.NodeID(101+i))
		}
	}
	healSplit := s.Net().Partition(sim.Split(left, right))
	r.nemAppend = func(n *nraftNode) {
		if step != 1 || n.id < r.ids[2] {
			return
		}
		step, x = 2, n.id
		r.notes = append(r.notes, nraftNote{r.now(), fmt.Sprintf("At %s %s, leader of term %d on the cut-off side, wrote %s into its log and crashed before sending it; the cut healed.",
			shopAt(r.now()), shopNode(x), n.term, n.log[len(n.log)-1].Buyer)})
		s.Crash(x)
		healSplit()
	}
	r.nemSold = func(n *nraftNode, buyer string) {
		if step != 2 {
			return
		}
		step, l = 3, n.id
		s.After(0, func() {
			healIsolation = s.Net().Partition(sim.Isolate(r.ids, x))
			s.Restart(x)
		})
	}
	r.nemCampaign = func(n *nraftNode) {
		if step != 3 || n.id != x {
			return
		}
		for _, id := range r.ids {
			if id != x && s.Up(id) && r.nodes[id].term >= n.term {
				return
			}
		}
		step = 4
		line := fmt.Sprintf("%s came back cut off and campaigned until its term, %d, passed everyone's; at %s its cut healed as it asked for votes, and %s, the leader that had said \"sold\", crashed.",
			shopNode(x), n.term, shopAt(r.now()), shopNode(l))
		r.comeback = &nraftMoment{at: r.now(), node: x, term: n.term, log: slices.Clone(n.log)}
		r.notes = append(r.notes, nraftNote{r.now(), line})
		healIsolation()
		s.Crash(l)
		r.faultsOver = true
	}
	s.After(nraftNemesisGivesUp, func() {
		if step < 4 {
			step = 4
			r.notes = append(r.notes, nraftNote{r.now(), fmt.Sprintf("The nemesis's moment never came; it healed everything at %s.", shopAt(r.now()))})
			r.faultsOver = true
		}
	})
	return "Raft's Figure 8: {n1,n2} with buyers ann and bob are cut off from {n3,n4,n5} and the other buyers; the leader there crashes right after writing a sale into its log; " +
		"when a leader of a newer term has said \"sold\", that node restarts cut off, and once its term passes everyone's " +
		"its cut heals and the leader that said \"sold\" crashes."
}

// finish runs to the end and reads: every node's committed owner, and
// the owner the leader of the highest term says.
func (r *nraftRun) finish(res *lab.Result) (*lab.Result, error) {
	done := func() bool { return shopAllDone(r.buyers) && r.faultsOver }
	if err := quorumRun(r.sale, done, 0); err != nil {
		return nil, err
	}
	// With the faults healed, wait for a leader whose whole log is
	// committed and held by every node: then every node's owner is final.
	var leader *nraftNode
	settled := func() bool {
		leader = nil
		for _, id := range r.ids {
			if n := r.nodes[id]; n.role == nraftLeader && (leader == nil || n.term > leader.term) {
				leader = n
			}
		}
		if leader == nil || leader.commit < len(leader.log) {
			return false
		}
		for _, id := range r.ids {
			if n := r.nodes[id]; n.commit != leader.commit || !slices.Equal(n.log, leader.log) {
				return false
			}
		}
		return true
	}
	if err := r.sale.Sim.RunUntil(settled, nraftSettleWithin); err != nil {
		return nil, fmt.Errorf("toy: seed %d: no settled leader after healing: %w", r.sale.Sim.Seed(), err)
	}
	var owners []string
	for _, id := range r.ids {
		owners = append(owners, r.nodes[id].owner())
	}
	owner := leader.owner()
	r.sale.Finish(res, lab.Final{Owners: owners, Owner: owner, StopAfter: nraftStopAfter})
	res.Story = r.story(res, leader)
	return res, nil
}

func (r *nraftRun) story(res *lab.Result, leader *nraftNode) []string {
	notes := slices.Clone(r.notes)
	if f := r.firstSold; f != nil {
		line := fmt.Sprintf("At %s %s, leader of term %d, answered %s \"sold\": a majority held its log %v",
			shopAt(f.at), shopNode(f.node), f.term, f.buyer, f.log)
		if f.entry.Term < f.term && !r.guard.OwnTermCommit {
			line += fmt.Sprintf(", whose sale, of term %d, it committed by counting", f.entry.Term)
		}
		notes = append(notes, nraftNote{f.at, line + "."})
	}
	if f := r.secondSold; f != nil {
		notes = append(notes, nraftNote{f.at, fmt.Sprintf("At %s %s, leader of term %d, answered %s \"sold\" too: a majority held its log %v.",
			shopAt(f.at), shopNode(f.node), f.term, f.buyer, f.log)})
	}
	if r.campaignsWithout > 0 && r.badLead == nil && r.comeback == nil {
		notes = append(notes, nraftNote{r.firstSold.at, fmt.Sprintf("Nodes whose logs lacked %s's sale campaigned %d times; none became leader.",
			r.firstSold.buyer, r.campaignsWithout)})
	}
	if b := r.badLead; b != nil {
		notes = append(notes, nraftNote{b.at, fmt.Sprintf("At %s %s became leader of term %d with log %v, without %s's sale.",
			shopAt(b.at), shopNode(b.node), b.term, b.log, r.firstSold.buyer)})
	}
	if d := r.dropped; d != nil {
		notes = append(notes, nraftNote{d.at, fmt.Sprintf("At %s %s dropped %s's sale from its log to take %s's.",
			shopAt(d.at), shopNode(d.node), d.buyer, shopNode(d.by))})
	}
	if c := r.comeback; c != nil && r.badLead == nil {
		notes = append(notes, nraftNote{c.at, fmt.Sprintf("%s never led without %s's sale: its log %v ends in an older term than the logs of the majority holding the sale.",
			shopNode(c.node), r.firstSold.buyer, c.log)})
	}
	slices.SortStableFunc(notes, func(a, b nraftNote) int { return cmp.Compare(a.at, b.at) })
	var story []string
	for _, n := range notes {
		story = append(story, n.line)
	}
	story = append(story, fmt.Sprintf("At the end %s leads term %d; its log is %v and the final read names %q.",
		shopNode(leader.id), leader.term, leader.log, res.Owner))
	return story
}

const nraftDesign = "Naive Raft for one value on five nodes: terms, one vote per term, a leader elected by a majority; " +
	"n1 leads term 0 without an election. The leader writes the first buyer who asks into its log and sends its log " +
	"to the others; once a majority holds the sale it tells that buyer \"sold\" and the rest \"sold out\". " +
	"Followers take the leader's log over their own. The story writes a log as [term:buyer ...], - for an empty entry."

// NaiveRaftNoVoteCheck runs design 9 without the vote check (9a): nodes
// vote for any candidate of a higher term. n4 and n5, cut off from n1,
// miss the first sale; one of them campaigns, wins the votes it needs
// from n2 or n3 with a log that lacks the sale, and its log replaces
// theirs: the phone is sold again (lab.SoldTwice) or the sale told is
// lost (lab.LostSale).
func NaiveRaftNoVoteCheck(seed uint64) (*lab.Result, error) {
	_, res, err := nraftRunWith(seed, nraftSafeguards{VoteCheck: false, OwnTermCommit: true}, false)
	return res, err
}

// NaiveRaftNoNoop runs design 9 without the leader's own-term entry (9b):
// a new leader commits an entry of an older term by counting the nodes
// that hold it. Under Raft's Figure 8 a node whose log ends in a newer
// term then wins an election and replaces that entry: the sale told is
// lost (lab.LostSale, or lab.SoldTwice when the new owner is told too).
func NaiveRaftNoNoop(seed uint64) (*lab.Result, error) {
	_, res, err := nraftRunWith(seed, nraftSafeguards{VoteCheck: true, OwnTermCommit: false}, true)
	return res, err
}

// NaiveRaftSafe runs design 9 with both safeguards, the control for 9a
// and 9b: odd seeds inject 9a's fault and even seeds 9b's. It is correct:
// exactly one buyer is told "sold", and that sale is kept.
func NaiveRaftSafe(seed uint64) (*lab.Result, error) {
	_, res, err := nraftRunWith(seed, nraftSafeguards{VoteCheck: true, OwnTermCommit: true}, seed%2 == 0)
	return res, err
}

// nraftRunWith runs design 9 with guard under fault B (Figure 8) if
// figure8, else under fault A (the partial cut), and returns the run too,
// for tests that check the fault struck.
func nraftRunWith(seed uint64, guard nraftSafeguards, figure8 bool) (*nraftRun, *lab.Result, error) {
	var r *nraftRun
	var fault string
	if figure8 {
		r = newNRaftRun(seed, guard, nraftRush)
		fault = r.figure8()
	} else {
		r = newNRaftRun(seed, guard, nraftTrickle)
		fault = r.partialCut()
	}
	design := nraftDesign
	switch {
	case !guard.VoteCheck:
		design += " Left out: the vote check; a node votes for any candidate of a higher term, whatever its log."
	case !guard.OwnTermCommit:
		design += " Left out: the leader's own-term entry; a leader commits any entry a majority holds, whatever its term."
	default:
		design += " Both safeguards are on: a node refuses a candidate whose log is less up to date than its own, " +
			"and a new leader appends an empty entry of its term and commits by counting only entries of its own term."
	}
	res := &lab.Result{Design: design, Fault: fault, Buyers: nraftBuyers}
	if _, err := r.finish(res); err != nil {
		return nil, nil, err
	}
	return r, res, nil
}
