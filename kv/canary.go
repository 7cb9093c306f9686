package kv

// canary plants a bug in the node layer, for the tests that must catch it
// (the simulator's seeds, kv/canary_test.go): a test that cannot fail
// proves nothing. The zero value plants nothing; only tests set it, through
// the unexported StoreConfig.canary. The protocol cores have their own
// (raft.Canary, paxos.Canary).
type canary struct {
	// waitersByID numbers requests from 0 again at every start, as a plain
	// counter did, and hands a waiter the result of any entry that carries
	// its request ID, not only its own entry: after a restart, an old
	// entry's result reaches a new request.
	waitersByID bool
}
