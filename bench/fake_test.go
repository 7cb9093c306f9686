package bench

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"connectrpc.com/connect"

	v1 "github.com/quorumkv/quorumkv/api/quorumkv/v1"
	"github.com/quorumkv/quorumkv/client"
)

// fakeStore is an in-memory cluster for the tests: linearizable, unless
// lag is set, when every read returns the version before the latest (as
// a replica one write behind would). Keyspaces whose names start with
// "ev" or "bench-ev-" get WALL.LOGICAL.NODE versions, the others
// RANGE.INDEX.
type fakeStore struct {
	lag bool
	// failEvery makes every n-th request fail with Unavailable (0: none),
	// counting from request failFrom on (the prefill is the first Keys).
	failEvery, failFrom int
	// failPuts makes every put fail with Unavailable.
	failPuts bool
	// interfereEvery makes another writer change the key just before
	// every n-th compare-and-swap (0: never), so that some lose however
	// the clients' goroutines happen to be scheduled.
	interfereEvery int

	mu struct {
		sync.Mutex
		seq       uint64
		requests  int
		cas       int
		history   map[string][]fakeRecord // keyspace/key -> writes in order
		values    map[string]bool         // every value written
		dupValues int
		quorums   []client.Quorum // of every put and get
		keyspaces map[string]*v1.Keyspace
		dropped   []string
	}
}

type fakeRecord struct {
	version string
	value   []byte
}

func newFakeStore() *fakeStore {
	f := &fakeStore{}
	f.mu.history = map[string][]fakeRecord{}
	f.mu.values = map[string]bool{}
	f.mu.keyspaces = map[string]*v1.Keyspace{}
	return f
}

var errFakeUnavailable = connect.NewError(connect.CodeUnavailable, fmt.Errorf("fake: no quorum"))

// begin counts a request and says whether it fails. Call with mu held.
func (f *fakeStore) begin() error {
	f.mu.requests++
	if f.failEvery > 0 && f.mu.requests > f.failFrom && f.mu.requests%f.failEvery == 0 {
		return errFakeUnavailable
	}
	return nil
}

func (f *fakeStore) write(keyspace string, key, value []byte) string {
	f.mu.seq++
	var v string
	if strings.HasPrefix(keyspace, "ev") || strings.HasPrefix(keyspace, "bench-ev-") {
		v = fmt.Sprintf("%d.0.1", f.mu.seq)
	} else {
		v = fmt.Sprintf("7.%d", f.mu.seq)
	}
	k := keyspace + "/" + string(key)
	f.mu.history[k] = append(f.mu.history[k], fakeRecord{v, bytes.Clone(value)})
	if f.mu.values[string(value)] {
		f.mu.dupValues++
	}
	f.mu.values[string(value)] = true
	return v
}

func (f *fakeStore) Put(ctx context.Context, keyspace string, key, value []byte, q client.Quorum) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mu.quorums = append(f.mu.quorums, q)
	if err := f.begin(); err != nil {
		return "", err
	}
	if f.failPuts {
		return "", errFakeUnavailable
	}
	return f.write(keyspace, key, value), nil
}

func (f *fakeStore) Get(ctx context.Context, keyspace string, key []byte, q client.Quorum) (client.KeyValue, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mu.quorums = append(f.mu.quorums, q)
	if err := f.begin(); err != nil {
		return client.KeyValue{}, err
	}
	h := f.mu.history[keyspace+"/"+string(key)]
	if f.lag && len(h) > 0 {
		h = h[:len(h)-1]
	}
	if len(h) == 0 {
		return client.KeyValue{}, fmt.Errorf("%w: fake: key %s", client.ErrNotFound, key)
	}
	last := h[len(h)-1]
	return client.KeyValue{Key: key, Value: last.value, Version: last.version}, nil
}

func (f *fakeStore) CompareAndSwap(ctx context.Context, keyspace string, key []byte, expect client.Expect, value []byte) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.begin(); err != nil {
		return "", err
	}
	if f.mu.cas++; f.interfereEvery > 0 && f.mu.cas%f.interfereEvery == 0 {
		f.write(keyspace, key, fmt.Appendf(nil, "another writer %d", f.mu.cas))
	}
	h := f.mu.history[keyspace+"/"+string(key)]
	ok := false
	switch {
	case expect.Absent:
		ok = len(h) == 0
	case expect.Version != "":
		ok = len(h) > 0 && h[len(h)-1].version == expect.Version
	default:
		ok = len(h) > 0 && bytes.Equal(h[len(h)-1].value, expect.Value)
	}
	if !ok {
		return "", fmt.Errorf("%w: fake", client.ErrConditionFailed)
	}
	return f.write(keyspace, key, value), nil
}

// The fake's Admin side: keyspaces get the server's majority defaults.

func (f *fakeStore) CreateKeyspace(ctx context.Context, ks *v1.Keyspace) (*v1.Keyspace, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.mu.keyspaces[ks.Name]; ok {
		return nil, connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("fake: keyspace %s exists", ks.Name))
	}
	created := &v1.Keyspace{Name: ks.Name, Mode: ks.Mode, Replicas: ks.Replicas, Ranges: ks.Ranges, Quorum: "majority"}
	if ks.Mode == v1.Mode_MODE_EVENTUAL {
		created.W, created.R = ks.Replicas/2+1, ks.Replicas/2+1
	}
	f.mu.keyspaces[ks.Name] = created
	return created, nil
}

func (f *fakeStore) DropKeyspace(ctx context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.mu.keyspaces[name]; !ok {
		return fmt.Errorf("%w: fake: keyspace %s", client.ErrNotFound, name)
	}
	delete(f.mu.keyspaces, name)
	f.mu.dropped = append(f.mu.dropped, name)
	return nil
}

func (f *fakeStore) keyspaceNames() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var names []string
	for n := range f.mu.keyspaces {
		names = append(names, n)
	}
	return names
}

func (f *fakeStore) droppedNames() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.mu.dropped)
}
