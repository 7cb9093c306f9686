package lab

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/sim"
)

// A one-server shop, the smallest design that uses every part of Sale:
// the server sells to the first buyer it hears; buyer 2's request is cut
// off, so it times out; buyer 3 is refused.
type buy struct{ Buyer string }
type answer struct{ Sold bool }

func runShop(t *testing.T, seed uint64) *Result {
	t.Helper()
	s := NewSale(seed, sim.LinkConfig{MinDelay: time.Millisecond, MaxDelay: time.Millisecond})
	owner := ""
	s.Sim.AddNode(1, func(env *sim.Env) sim.Process {
		return sim.ProcessFunc(func(from sim.NodeID, msg any) {
			b := msg.(buy)
			if owner == "" {
				owner = b.Buyer
			}
			env.Send(from, answer{Sold: owner == b.Buyer})
		})
	})
	s.Lane(1, "n1")
	names := BuyerNames(3)
	for i, name := range names {
		id := sim.NodeID(100 + i)
		s.Sim.AddNode(id, func(env *sim.Env) sim.Process {
			done := false
			env.After(time.Duration(i)*10*time.Millisecond, func() {
				s.Begin(name)
				env.Send(1, buy{Buyer: name})
				env.After(50*time.Millisecond, func() {
					if !done {
						done = true
						s.NoAnswer(name, "timeout")
					}
				})
			})
			return sim.ProcessFunc(func(from sim.NodeID, msg any) {
				if !done {
					done = true
					s.Answer(name, msg.(answer).Sold, 1)
				}
			})
		})
		s.Lane(id, name)
	}
	s.Sim.Net().Partition(sim.CutOneWay([]sim.NodeID{101}, []sim.NodeID{1}))
	if err := s.Sim.RunFor(200 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	return s.Finish(&Result{Design: "one server", Fault: "bob is cut off", Buyers: 3}, Final{Owners: []string{owner}, Owner: owner})
}

func TestSaleCounts(t *testing.T) {
	r := runShop(t, 1)
	if got := strings.Join(r.ToldSold, ","); got != "ann" {
		t.Errorf("told sold = %q, want ann", got)
	}
	if r.Verdict != Stopped {
		t.Errorf("verdict = %q, want %q (bob got no answer for 50ms)", r.Verdict, Stopped)
	}
	if r.Unavailable != 50*time.Millisecond {
		t.Errorf("unavailable = %v, want 50ms", r.Unavailable)
	}
	// ann: request + answer; bob: request dropped by the cut; cat: request + answer.
	if r.Messages != 5 {
		t.Errorf("messages = %d, want 5", r.Messages)
	}
	if r.RoundTrips != 1 || r.PhonesSold != 1 || r.LostSales != 0 || r.Owner != "ann" {
		t.Errorf("round trips %v, phones sold %d, lost %d, owner %q", r.RoundTrips, r.PhonesSold, r.LostSales, r.Owner)
	}
	var lost, delivered int
	for _, ev := range r.Timeline.Events {
		if ev.Kind == Message {
			if ev.Arrive == 0 {
				lost++
			} else if ev.Arrive != ev.At+time.Millisecond {
				t.Errorf("message %+v arrives %v after it was sent, want 1ms", ev, ev.Arrive-ev.At)
			} else {
				delivered++
			}
		}
	}
	if lost != 1 || delivered != 4 {
		t.Errorf("timeline: %d lost and %d delivered messages, want 1 and 4", lost, delivered)
	}
}

func TestJudge(t *testing.T) {
	for _, c := range []struct {
		r        Result
		diverged bool
		want     Verdict
	}{
		{Result{ToldSold: []string{"a", "b"}, LostSales: 1}, true, SoldTwice},
		{Result{ToldSold: []string{"a"}, LostSales: 1}, true, LostSale},
		{Result{ToldSold: []string{"a"}, Owner: "a"}, true, Diverged},
		{Result{ToldSold: []string{"a"}, Owner: "a", Unavailable: 2 * time.Second}, false, Stopped},
		{Result{Owner: ""}, false, Stopped}, // nobody could buy
		{Result{ToldSold: []string{"a"}, Owner: "a", Unavailable: time.Second}, false, Correct},
	} {
		r := c.r
		r.Judge(c.diverged, time.Second)
		if r.Verdict != c.want {
			t.Errorf("%+v diverged=%v: verdict %q, want %q", c.r, c.diverged, r.Verdict, c.want)
		}
	}
}

func TestUnion(t *testing.T) {
	ms := time.Millisecond
	got := Union([][2]time.Duration{{10 * ms, 20 * ms}, {0, 5 * ms}, {15 * ms, 30 * ms}, {40 * ms, 41 * ms}})
	if got != 26*ms {
		t.Errorf("union = %v, want 26ms", got)
	}
}

func TestSaleIsDeterministic(t *testing.T) {
	a, _ := json.Marshal(runShop(t, 7))
	b, _ := json.Marshal(runShop(t, 7))
	if !bytes.Equal(a, b) {
		t.Error("two runs of seed 7 differ")
	}
}

func TestRendering(t *testing.T) {
	r := runShop(t, 1)
	r.Number, r.Title = 1, `one server <"&">`
	var story bytes.Buffer
	if err := WriteStory(&story, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"1  one server", "buyers told \"sold\"         1 (ann)", "unavailable                0.05s", "messages                   5", "Verdict: STOPS SELLING"} {
		if !strings.Contains(story.String(), want) {
			t.Errorf("story lacks %q:\n%s", want, story.String())
		}
	}
	var table bytes.Buffer
	if err := WriteTable(&table, []*Result{r, r}); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(table.String(), "\n"); lines != 3 {
		t.Errorf("table has %d lines, want 3:\n%s", lines, table.String())
	}
	var js bytes.Buffer
	if err := WriteJSON(&js, []*Result{r}); err != nil {
		t.Fatal(err)
	}
	var back Result
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Unavailable != r.Unavailable || back.Verdict != r.Verdict || len(back.Timeline.Events) != len(r.Timeline.Events) {
		t.Errorf("JSON round trip lost data: %+v", back)
	}
	var pic bytes.Buffer
	if err := SVG(&pic, r); err != nil {
		t.Fatal(err)
	}
	// Well-formed XML, the title escaped, one arrow per delivered message.
	dec := xml.NewDecoder(bytes.NewReader(pic.Bytes()))
	for {
		if _, err := dec.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v", err)
		}
	}
	if !strings.Contains(pic.String(), "one server &lt;&#34;&amp;&#34;&gt;") {
		t.Error("SVG title not escaped")
	}
	if n := strings.Count(pic.String(), `stroke-opacity="0.7"`); n != 4 {
		t.Errorf("SVG draws %d delivered arrows, want 4", n)
	}
}
