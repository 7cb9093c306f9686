package sim_test

import (
	"fmt"
	"time"

	"github.com/quorumkv/quorumkv/internal/sim"
)

// Two nodes exchange pings while the network is cut one way for a while.
func Example() {
	s := sim.New(sim.Config{Seed: 1, Link: sim.LinkConfig{MinDelay: 5 * time.Millisecond, MaxDelay: 5 * time.Millisecond}})
	for _, id := range []sim.NodeID{1, 2} {
		s.AddNode(id, func(env *sim.Env) sim.Process {
			peer := 3 - env.ID()
			env.Every(20*time.Millisecond, func() { env.Send(peer, fmt.Sprintf("ping from %d", env.ID())) })
			return sim.ProcessFunc(func(from sim.NodeID, msg any) {
				fmt.Printf("%v: %d got %q\n", env.Now(), env.ID(), msg)
			})
		})
	}
	heal := s.Net().Partition(sim.CutOneWay([]sim.NodeID{2}, []sim.NodeID{1}))
	s.After(50*time.Millisecond, heal)
	if err := s.RunFor(70 * time.Millisecond); err != nil {
		fmt.Println(err)
	}
	// Output:
	// 25ms: 2 got "ping from 1"
	// 45ms: 2 got "ping from 1"
	// 65ms: 2 got "ping from 1"
	// 65ms: 1 got "ping from 2"
}
