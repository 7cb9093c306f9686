// Package cluster runs designs of the article's road against a real
// quorumkv cluster, through the Go client: the W/R/N read-then-write shop
// (design 6), compare-and-swap through the product's paxos keyspace
// (design 8), the quorum geometries under the failures they survive
// (design 10), and raft and paxos keyspaces under a nemesis that kills
// and pauses their leaders (design 11).
//
// Times here are wall-clock, measured from the start of a run, and the
// races are real ones: a run shows what happened this time, not what
// must happen. Messages and round trips are not observable from outside
// a cluster and are left at 0.
//
// StartLocal starts a cluster of kvd processes on loopback whose Nemesis
// may kill, restart, pause and resume them: the faults of designs 10 and
// 11 need it. Without a nemesis they run without faults and say so.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"

	v1 "github.com/quorumkv/quorumkv/api/quorumkv/v1"
	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/lab"
)

// The phone every sale sells, and the key a keyspace is warmed up with.
var (
	phoneKey  = []byte("phone")
	warmupKey = []byte("warmup")
)

// DefaultBuyers is how many buyers race when the target does not say.
const DefaultBuyers = 8

// stopAfter is the unavailability that counts as a stop in designs meant
// to survive their faults: a new leader took one to three seconds to
// serve after a kill or a pause in our runs on loopback (kvd's election
// timeout is 10 ticks of 100 ms), and a run may go through two elections
// (a kill, then a pause).
const stopAfter = 5 * time.Second

// noFaults is the story's line when the target has no nemesis.
const noFaults = "no faults: this environment cannot hurt the nodes (use --local)"

// clientOf returns the target's client, or a new one of its endpoints.
func clientOf(t lab.Target) (*client.Client, error) {
	switch c := t.Client.(type) {
	case *client.Client:
		return c, nil
	case nil:
		return client.New(client.Config{Endpoints: t.Endpoints})
	default:
		return nil, fmt.Errorf("lab/cluster: Target.Client is a %T, want *client.Client", t.Client)
	}
}

// buyersOf returns the names of the target's buyers.
func buyersOf(t lab.Target) []string {
	n := t.Buyers
	if n <= 0 {
		n = DefaultBuyers
	}
	return lab.BuyerNames(n)
}

// members returns the cluster's live members, by node name.
func members(ctx context.Context, cl *client.Client) ([]*v1.Member, error) {
	all, err := cl.Members(ctx)
	if err != nil {
		return nil, fmt.Errorf("lab/cluster: list the members: %w", err)
	}
	var live []*v1.Member
	for _, m := range all {
		if m.State == v1.MemberState_MEMBER_STATE_ALIVE {
			live = append(live, m)
		}
	}
	slices.SortFunc(live, func(a, b *v1.Member) int { return strings.Compare(a.NodeId, b.NodeId) })
	return live, nil
}

// nodeLanes names the nodes' lanes: the nemesis's nodes, or else the
// live members.
func nodeLanes(nem lab.Nemesis, live []*v1.Member) []string {
	if nem != nil {
		return nem.Nodes()
	}
	names := make([]string, len(live))
	for i, m := range live {
		names[i] = m.NodeId
	}
	return names
}

// keyspaceName returns a name no earlier run used: lab-TAG-NANOS.
func keyspaceName(tag string) string {
	return fmt.Sprintf("lab-%s-%d", tag, time.Now().UnixNano())
}

// createKeyspace creates ks, with one range so that one leader serves
// the phone, and writes its warm-up key until that works: the range has
// elected its leader (or, eventual, its replicas answer) before the sale.
// A create refused for want of live nodes is asked again, as a node
// restarted by the round before may not be back in gossip yet; a
// keyspace that takes no write is dropped again. Each step gives up
// after 30 s.
func createKeyspace(ctx context.Context, cl *client.Client, ks *v1.Keyspace) error {
	ks.Ranges = 1
	deadline := time.Now().Add(30 * time.Second)
	for retry := false; ; retry = true {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := cl.CreateKeyspace(actx, ks)
		cancel()
		code := connect.CodeOf(err)
		if err == nil || (retry && code == connect.CodeAlreadyExists) { // an earlier attempt's, unanswered
			break
		}
		if code == connect.CodeInvalidArgument || code == connect.CodeAlreadyExists || time.Now().After(deadline) {
			return fmt.Errorf("lab/cluster: create keyspace %s: %w", ks.Name, err)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := cl.Put(actx, ks.Name, warmupKey, []byte("x"), client.Quorum{})
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return errors.Join(fmt.Errorf("lab/cluster: keyspace %s takes no writes: %w", ks.Name, err), dropKeyspace(ctx, cl, ks.Name))
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return errors.Join(err, dropKeyspace(ctx, cl, ks.Name))
		}
	}
}

// dropKeyspace drops ks, even when ctx has ended: a run leaves nothing
// behind.
func dropKeyspace(ctx context.Context, cl *client.Client, name string) error {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	if err := cl.DropKeyspace(dctx, name); err != nil {
		return fmt.Errorf("lab/cluster: drop keyspace %s: %w", name, err)
	}
	return nil
}

// firstRange returns the keyspace's one range: its replicas and leader.
func firstRange(ctx context.Context, cl *client.Client, ks string) (*v1.Range, error) {
	ranges, err := cl.Ranges(ctx, ks)
	if err != nil {
		return nil, fmt.Errorf("lab/cluster: ranges of %s: %w", ks, err)
	}
	if len(ranges) == 0 {
		return nil, fmt.Errorf("lab/cluster: keyspace %s has no range", ks)
	}
	return ranges[0], nil
}

// readOwner reads the phone's owner ("" if none) with quorum q, trying
// again until it gets an answer or deadline passes.
func readOwner(ctx context.Context, cl *client.Client, ks string, q client.Quorum, deadline time.Time) (string, error) {
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		kv, err := cl.Get(actx, ks, phoneKey, q)
		cancel()
		switch {
		case err == nil:
			return string(kv.Value), nil
		case errors.Is(err, client.ErrNotFound) && !errors.Is(err, client.ErrNoKeyspace):
			return "", nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return "", fmt.Errorf("lab/cluster: read the owner in %s: %w", ks, err)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return "", err
		}
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// seconds formats a duration for a story: 1.25s, or 12ms below a
// second.
func seconds(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%dms", d.Round(time.Millisecond).Milliseconds())
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

// why says in a few words why an attempt got no answer.
func why(err error) string {
	switch {
	case errors.Is(err, client.ErrOutcomeUnknown):
		return "no answer: outcome unknown"
	case errors.Is(err, client.ErrNoNode):
		return "no answer: no node could serve"
	case errors.Is(err, context.DeadlineExceeded):
		return "no answer in time"
	}
	return "no answer: " + err.Error()
}

// names joins names as a story lists them: "ann, bob and cat".
func names(list []string) string {
	switch len(list) {
	case 0:
		return "no one"
	case 1:
		return list[0]
	}
	return strings.Join(list[:len(list)-1], ", ") + " and " + list[len(list)-1]
}
