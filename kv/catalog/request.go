package catalog

// What a request carries besides its keyspace and key: the value and
// version a read returns, a compare-and-swap's condition, and a write's
// options.

// KeyValue is a key with its value and version.
type KeyValue struct {
	Key, Value []byte
	Version    string
}

// Expect is a compare-and-swap condition: Absent, else Exists, else
// Version if not empty, else Value.
type Expect struct {
	Value   []byte
	Absent  bool
	Exists  bool
	Version string
}

// WriteOptions are what a write request may add to its key and value.
type WriteOptions struct {
	// Quorum overrides an eventual keyspace's W (and R, for the reads of a
	// compare-and-swap).
	Quorum QuorumOverride
	// IdempotencyKey names the write across retries (Limits.CheckIdempotencyKey):
	// raft and paxos keyspaces, and compare-and-swap in eventual ones,
	// apply a write sent again with the same key at most once and answer
	// the retry as they answered the first attempt.
	IdempotencyKey []byte
	// Retry says the client sent this request before, with the same
	// idempotency key, and does not know what became of it (RetryHeader).
	// A compare-and-swap in an eventual keyspace that cannot find its
	// first attempt in the key's swap history then answers "outcome
	// unknown" rather than "condition failed".
	Retry bool
}

// QuorumOverride is a request's W and R for an eventual keyspace: a count,
// or a level (one, quorum, all, resolved against N by wrn.ResolveSize).
// Zero values keep the keyspace's defaults.
type QuorumOverride struct {
	W, R           int
	WLevel, RLevel string
}
