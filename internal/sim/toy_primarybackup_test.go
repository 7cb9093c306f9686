package sim_test

// A toy protocol that is broken on purpose: the asynchronous primary-backup
// replication that the article starts from. The primary applies a write,
// acknowledges the client, and only then forwards the write to the backup,
// with no acknowledgement. The backup promotes itself when it stops hearing
// the primary's heartbeats. So:
//
//  1. a client writes x=1 to the primary, which acks;
//  2. the primary crashes (or is cut off) before the forward arrives;
//  3. the backup times out, promotes itself, and serves x as it knew it:
//     an acknowledged write is lost.
//
// And when a cut-off primary is still alive, both serve clients: split
// brain, stale reads. The canary test demands that the checker notice.

import (
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/quorumkv/quorumkv/internal/sim"
)

type pbRequest struct {
	Op uint64
	In sim.KVInput
}

type pbReply struct {
	Op         uint64
	Out        sim.KVOutput
	NotPrimary bool
}

type pbForward struct {
	Key     string
	Present bool
	Value   string
}

type pbHeartbeat struct{}

const (
	pbHeartbeatEvery = 20 * time.Millisecond
	pbFailoverAfter  = 100 * time.Millisecond
)

type pbServer struct {
	env       *sim.Env
	peer      sim.NodeID
	primary   bool
	lastHeard time.Duration
	data      map[string]string
}

func newPBServer(peer sim.NodeID, primaryAtStart bool) sim.StartFunc {
	return func(env *sim.Env) sim.Process {
		srv := &pbServer{env: env, peer: peer, primary: primaryAtStart, lastHeard: env.Now(), data: make(map[string]string)}
		disk := env.Disk()
		if role, ok := disk.Get("role"); ok {
			srv.primary = string(role) == "primary"
		}
		for _, k := range disk.Keys("key/") {
			v, _ := disk.Get(k)
			srv.data[k[len("key/"):]] = string(v)
		}
		env.Every(pbHeartbeatEvery, srv.tick)
		return srv
	}
}

func (srv *pbServer) tick() {
	if srv.primary {
		srv.env.Send(srv.peer, pbHeartbeat{})
		return
	}
	if srv.env.Now()-srv.lastHeard > pbFailoverAfter {
		srv.env.Logf("backup promotes itself")
		srv.primary = true
		srv.env.Disk().Set("role", []byte("primary"))
		srv.env.Disk().Sync()
	}
}

func (srv *pbServer) apply(key string, present bool, value string) {
	if present {
		srv.data[key] = value
		srv.env.Disk().Set("key/"+key, []byte(value))
	} else {
		delete(srv.data, key)
		srv.env.Disk().Delete("key/" + key)
	}
	srv.env.Disk().Sync()
}

func (srv *pbServer) Receive(from sim.NodeID, msg any) {
	switch m := msg.(type) {
	case pbHeartbeat:
		srv.lastHeard = srv.env.Now()
	case pbForward:
		srv.apply(m.Key, m.Present, m.Value)
	case pbRequest:
		if !srv.primary {
			srv.env.Send(from, pbReply{Op: m.Op, NotPrimary: true})
			return
		}
		var out sim.KVOutput
		switch m.In.Op {
		case sim.OpGet:
			out.Value, out.Found = srv.data[m.In.Key]
		case sim.OpPut, sim.OpDelete:
			present := m.In.Op == sim.OpPut
			srv.apply(m.In.Key, present, m.In.Value)
			// The bug: acknowledge first, replicate later, never wait.
			srv.env.Send(from, pbReply{Op: m.Op, Out: out})
			srv.env.Send(srv.peer, pbForward{Key: m.In.Key, Present: present, Value: m.In.Value})
			return
		}
		srv.env.Send(from, pbReply{Op: m.Op, Out: out})
	}
}

// pbClient sends each operation to the server it believes is primary and
// switches servers on a refusal or a timeout.
type pbClient struct {
	s       *sim.Sim
	env     *sim.Env
	h       *sim.History
	servers []sim.NodeID
	target  int
	work    workload
	nextOp  uint64
	op      *sim.Op
	timer   *sim.Timer
}

func (c *pbClient) start() {
	c.nextOp++
	in := c.work.next(c.s)
	c.op = c.h.Invoke(c.env.ID(), in)
	c.env.Send(c.servers[c.target], pbRequest{Op: c.nextOp, In: in})
	c.timer = c.env.After(300*time.Millisecond, func() {
		c.op.Unknown()
		c.switchTarget()
	})
}

func (c *pbClient) switchTarget() {
	c.op = nil
	c.target = (c.target + 1) % len(c.servers)
	c.env.After(time.Duration(c.s.Rand().IntN(20))*time.Millisecond, c.start)
}

func (c *pbClient) Receive(from sim.NodeID, msg any) {
	m, ok := msg.(pbReply)
	if !ok || c.op == nil || m.Op != c.nextOp {
		return
	}
	c.timer.Stop()
	if m.NotPrimary {
		c.op.Fail() // refused before doing anything
		c.switchTarget()
		return
	}
	c.op.Return(m.Out)
	c.op = nil
	c.env.After(time.Duration(c.s.Rand().IntN(20))*time.Millisecond, c.start)
}

func runPrimaryBackup(t testing.TB, seed uint64) *sim.History {
	s := sim.NewForTest(t, sim.Config{Seed: seed, Link: sim.LinkConfig{
		MinDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond, DropRate: 0.02,
	}})
	h := sim.NewHistory(s)
	servers := []sim.NodeID{1, 2}
	s.AddNode(1, newPBServer(2, true))
	s.AddNode(2, newPBServer(1, false))
	all := append([]sim.NodeID(nil), servers...)
	for i := range 3 {
		id := sim.NodeID(101 + i)
		all = append(all, id)
		c := &pbClient{s: s, h: h, servers: servers, work: workload{client: id, keys: []string{"x", "y"}}}
		s.AddNode(id, func(env *sim.Env) sim.Process {
			c.env = env
			env.After(0, c.start)
			return c
		})
	}
	s.StartNemesis(sim.NemesisConfig{Nodes: all, Crashable: servers})
	if err := s.RunFor(3 * time.Second); err != nil {
		t.Fatal(err)
	}
	return h
}

// canary runs a broken protocol on seeds 1..maxSeeds and passes as soon as
// the checker flags one history as not linearizable. If none is flagged,
// the simulator's faults or the checker have gone blind, and that is the
// failure.
func canary(t *testing.T, maxSeeds int, run func(t testing.TB, seed uint64) *sim.History) {
	for seed := uint64(1); seed <= uint64(maxSeeds); seed++ {
		h := run(t, seed)
		switch h.Check(sim.DefaultCheckTimeout) {
		case porcupine.Illegal:
			t.Logf("seed %d: history of %d operations flagged as not linearizable, as it should be", seed, h.Len())
			return
		case porcupine.Unknown:
			t.Logf("seed %d: check timed out", seed)
		}
	}
	t.Fatalf("no seed in 1..%d produced a non-linearizable history of a protocol known to be broken: "+
		"the nemesis or the checker has stopped finding bugs", maxSeeds)
}

// TestAsyncPrimaryBackupIsCaught is the harness's negative control.
func TestAsyncPrimaryBackupIsCaught(t *testing.T) {
	canary(t, 20, runPrimaryBackup)
}
