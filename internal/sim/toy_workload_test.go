package sim_test

import (
	"fmt"

	"github.com/quorumkv/quorumkv/internal/sim"
)

// workload draws a client's next operation. Values are unique per client
// and write, which lets porcupine tell writes apart and prune its search.
type workload struct {
	client sim.NodeID
	keys   []string
	n      int
}

func (w *workload) next(s *sim.Sim) sim.KVInput {
	rng := s.Rand()
	key := w.keys[rng.IntN(len(w.keys))]
	w.n++
	switch p := rng.IntN(100); {
	case p < 50:
		return sim.KVGet(key)
	case p < 85:
		return sim.KVPut(key, fmt.Sprintf("c%d-%d", w.client, w.n))
	default:
		return sim.KVDelete(key)
	}
}
