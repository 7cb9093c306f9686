package cluster

import (
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/quorumkv/quorumkv/lab"
)

// run is the bookkeeping of one lab run against a cluster: the events of
// its timeline, at wall-clock times since its start. Its methods are safe
// for concurrent use by the buyers' goroutines.
type run struct {
	start time.Time
	logf  func(format string, args ...any)
	mu    struct {
		sync.Mutex
		events []lab.Event
	}
}

func newRun(t lab.Target) *run {
	logf := t.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	return &run{start: time.Now(), logf: logf}
}

// now is the time since the run started.
func (r *run) now() time.Duration { return time.Since(r.start) }

// mark puts an event on the timeline now.
func (r *run) mark(kind lab.EventKind, lane, label string) {
	r.markAt(r.now(), kind, lane, label)
}

func (r *run) markAt(at time.Duration, kind lab.EventKind, lane, label string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mu.events = append(r.mu.events, lab.Event{At: at, Kind: kind, Lane: lane, Label: label})
}

// timeline returns the run's picture: the lanes given, and the events in
// time order.
func (r *run) timeline(lanes []string) lab.Timeline {
	r.mu.Lock()
	defer r.mu.Unlock()
	events := slices.Clone(r.mu.events)
	sort.SliceStable(events, func(i, j int) bool { return events[i].At < events[j].At })
	return lab.Timeline{Lanes: slices.Clone(lanes), End: r.now(), Events: events}
}

// shop is one sale of one phone in one keyspace: the answers its buyers
// got. A run may hold several shops (one per keyspace); their events share
// the run's timeline, labelled with the shop's name.
type shop struct {
	run      *run
	name     string // "" when the run has one shop
	keyspace string
	mu       struct {
		sync.Mutex
		told    []string
		failed  [][2]time.Duration // failed attempts, for Unavailable
		slowest time.Duration      // the longest attempt that got an answer
		unknown []string           // buyers whose outcome is still unknown
		refused int                // answers "sold out"
	}
	// owner is what the final read returned, set once the buyers are done.
	owner string
}

func newShop(r *run, name, keyspace string) *shop {
	return &shop{run: r, name: name, keyspace: keyspace}
}

// label prefixes an event's label with the shop's name, if it has one.
func (s *shop) label(l string) string {
	if s.name == "" {
		return l
	}
	return s.name + ": " + l
}

// answered records that buyer's attempt begun at began got an answer.
func (s *shop) answered(began time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.slowest = max(s.mu.slowest, s.run.now()-began)
}

// sold records that buyer was told "sold" (how says what told it), and
// marks the moment the design broke when someone else was told before.
func (s *shop) sold(buyer string, began time.Duration, how string) {
	s.answered(began)
	s.mu.Lock()
	before := slices.Clone(s.mu.told)
	if !slices.Contains(s.mu.told, buyer) {
		s.mu.told = append(s.mu.told, buyer)
	}
	s.mu.Unlock()
	s.run.mark(lab.Sold, buyer, s.label(how))
	if len(before) > 0 && !slices.Contains(before, buyer) {
		s.run.mark(lab.Broke, buyer, s.label(fmt.Sprintf("sold again: %s was told \"sold\" first", before[0])))
	}
	s.run.logf("%s %s", buyer, s.label(how))
}

// refused records that buyer was told "sold out".
func (s *shop) refused(buyer string, began time.Duration, how string) {
	s.answered(began)
	s.mu.Lock()
	s.mu.refused++
	s.mu.Unlock()
	s.run.mark(lab.Refused, buyer, s.label(how))
}

// noAnswer records that buyer's attempt begun at began got no answer.
func (s *shop) noAnswer(buyer string, began time.Duration, how string) {
	s.mu.Lock()
	s.mu.failed = append(s.mu.failed, [2]time.Duration{began, s.run.now()})
	s.mu.Unlock()
	s.run.mark(lab.NoAnswer, buyer, s.label(how))
}

// unresolved records that buyer gave up with its last write's outcome
// unknown: the final read will tell.
func (s *shop) unresolved(buyer string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.unknown = append(s.mu.unknown, buyer)
}

// resolve tells each buyer whose outcome was unknown what the final read
// (s.owner) says: the one it names bought the phone.
func (s *shop) resolve() {
	s.mu.Lock()
	unknown := slices.Clone(s.mu.unknown)
	s.mu.unknown = nil
	s.mu.Unlock()
	for _, b := range unknown {
		if b == s.owner {
			now := s.run.now()
			s.sold(b, now, "sold (its unknown outcome, read after healing)")
		}
	}
}

// refusals counts the answers "sold out".
func (s *shop) refusals() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.refused
}

// told returns the buyers told "sold", in order.
func (s *shop) told() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.mu.told)
}

// result judges the shop alone: its counts, without timeline or story.
func (s *shop) result() *lab.Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	res := &lab.Result{
		Where:       "cluster",
		ToldSold:    append([]string{}, s.mu.told...),
		Owner:       s.owner,
		Unavailable: lab.Union(s.mu.failed),
	}
	if s.owner != "" {
		res.PhonesSold = 1
	}
	for _, b := range res.ToldSold {
		if b != s.owner {
			res.LostSales++
		}
	}
	res.Judge(false /* diverged: not observable */, stopAfter)
	return res
}

// tally says in a sentence what the shop's buyers were told.
func (s *shop) tally(buyers int) string {
	res := s.result()
	s.mu.Lock()
	slowest, failed, refused := s.mu.slowest, len(s.mu.failed), s.mu.refused
	s.mu.Unlock()
	line := fmt.Sprintf("%s told \"sold\", %d told \"sold out\"", names(res.ToldSold), refused)
	if silent := buyers - len(res.ToldSold) - refused; silent > 0 {
		line += fmt.Sprintf(", %d never answered", silent)
	}
	if failed > 0 {
		line += fmt.Sprintf(", %d attempts got no answer (%s without an answer in all)", failed, seconds(res.Unavailable))
	}
	line += fmt.Sprintf("; the slowest answer took %s; the final read names %s", seconds(slowest), ownerName(s.owner))
	return line
}

// ownerName is an owner as a story names it.
func ownerName(owner string) string {
	if owner == "" {
		return "no owner"
	}
	return owner
}

// finish fills res's counts from the worst of the run's shops (the first
// of those equally bad), its timeline and length from the run's, its
// story from story and a line saying what a cluster does not show, and
// judges it.
func (r *run) finish(res *lab.Result, lanes []string, shops []*shop, story []string) *lab.Result {
	var worst *lab.Result
	for _, s := range shops {
		sr := s.result()
		if worst == nil || (lab.Worst(worst.Verdict, sr.Verdict) == sr.Verdict && sr.Verdict != worst.Verdict) {
			worst = sr
		}
	}
	res.Where = "cluster"
	res.ToldSold = worst.ToldSold
	res.Owner = worst.Owner
	res.PhonesSold = worst.PhonesSold
	res.LostSales = worst.LostSales
	res.Unavailable = worst.Unavailable
	res.Messages, res.RoundTrips = 0, 0
	res.Timeline = r.timeline(lanes)
	res.Duration = res.Timeline.End
	res.Story = append(story, "Messages and round trips are not measured on a cluster: they are not observable from outside.")
	res.Judge(false /* diverged: not observable */, stopAfter)
	return res
}
