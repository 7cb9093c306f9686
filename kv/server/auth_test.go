package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	peerv1 "github.com/quorumkv/quorumkv/api/quorumkv/peer/v1"
	"github.com/quorumkv/quorumkv/api/quorumkv/peer/v1/peerv1connect"
	v1 "github.com/quorumkv/quorumkv/api/quorumkv/v1"
	"github.com/quorumkv/quorumkv/api/quorumkv/v1/quorumkvv1connect"
	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/kv"
	"github.com/quorumkv/quorumkv/kv/auth"
	"github.com/quorumkv/quorumkv/kv/transport"
)

// cheapKDF keeps the tests' password hashes fast; the hashes name their
// parameters, so the server checks them as it checks real ones.
func cheapKDF(t *testing.T) {
	old := auth.DefaultKDF
	auth.DefaultKDF = auth.KDF{Memory: 64, Time: 1, Threads: 1}
	t.Cleanup(func() { auth.DefaultKDF = old })
}

// authServer serves a one-node cluster with canary planted, and returns
// its URL and a client factory (user "" for no one).
func authServer(t *testing.T, canary AuthCanary) (string, func(user, password string) *client.Client) {
	t.Helper()
	cheapKDF(t)
	_, h := serveOneNode(t, ServerInfo{NodeName: "n1", Canary: canary})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL, func(user, password string) *client.Client {
		cl, err := client.New(client.Config{Endpoints: []string{srv.URL}, HTTPClient: srv.Client(), Timeout: 10 * time.Second,
			User: user, Password: password})
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}
}

// setUpAuth makes, with auth off: keyspace orders; role reader (read on
// orders) for user alice; role writer (write on "team-*") for bob; a
// password for root; then turns auth on as root.
func setUpAuth(t *testing.T, ctx context.Context, anon *client.Client) {
	t.Helper()
	if _, err := anon.CreateKeyspace(ctx, &v1.Keyspace{Name: "orders", Mode: v1.Mode_MODE_RAFT, Replicas: 1, Ranges: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := anon.Put(ctx, "orders", []byte("phone"), []byte("in stock"), client.Quorum{}); err != nil {
		t.Fatal(err)
	}
	for _, step := range []func() error{
		func() error { return anon.RoleAdd(ctx, "reader") },
		func() error { return anon.RoleGrant(ctx, "reader", "orders", v1.Access_ACCESS_READ) },
		func() error { return anon.RoleAdd(ctx, "writer") },
		func() error { return anon.RoleGrant(ctx, "writer", "team-*", v1.Access_ACCESS_ADMIN) },
		func() error { return anon.UserAdd(ctx, "alice", "alice-pw", []string{"reader"}) },
		func() error { return anon.UserAdd(ctx, "bob", "bob-pw", nil) },
		func() error { return anon.UserGrantRole(ctx, "bob", "writer") },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	// Root cannot log in yet: enabling would lock everyone out.
	if err := anon.AuthEnable(ctx); connect.CodeOf(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), "kvctl user passwd root") {
		t.Fatalf("auth enable without a way for root to log in: %v, want FailedPrecondition naming kvctl user passwd root", err)
	}
	if err := anon.UserChangePassword(ctx, "root", "root-pw"); err != nil {
		t.Fatal(err)
	}
	if err := anon.AuthEnable(ctx); err != nil {
		t.Fatal(err)
	}
}

// checkAuth returns what the cluster allowed that it should not have, or
// refused that it should have allowed.
func checkAuth(ctx context.Context, base string, connectTo func(user, password string) *client.Client) []string {
	var bad []string
	expect := func(what string, err error, code connect.Code, says ...string) {
		got := connect.CodeOf(err)
		if err == nil {
			got = connect.Code(0)
		}
		if got != code {
			bad = append(bad, fmt.Sprintf("%s: %v (code %v), want code %v", what, err, got, code))
			return
		}
		for _, s := range says {
			if !strings.Contains(err.Error(), s) {
				bad = append(bad, fmt.Sprintf("%s: %q does not say %q", what, err, s))
			}
		}
	}
	const ok = connect.Code(0)
	anon, alice, bob, root := connectTo("", ""), connectTo("alice", "alice-pw"), connectTo("bob", "bob-pw"), connectTo("root", "root-pw")

	_, err := anon.Get(ctx, "orders", []byte("phone"), client.Quorum{})
	expect("anonymous get", err, connect.CodeUnauthenticated, "kvctl --user")
	_, err = anon.Put(ctx, "orders", []byte("phone"), []byte("sold to anon"), client.Quorum{})
	expect("anonymous put", err, connect.CodeUnauthenticated)
	_, err = anon.ListKeyspaces(ctx)
	expect("anonymous list keyspaces", err, connect.CodeUnauthenticated)
	_, err = connectTo("alice", "wrong").Get(ctx, "orders", []byte("phone"), client.Quorum{})
	expect("wrong password", err, connect.CodeUnauthenticated, "wrong user name or password")
	_, err = connectTo("mallory", "alice-pw").Get(ctx, "orders", []byte("phone"), client.Quorum{})
	expect("unknown user", err, connect.CodeUnauthenticated, "wrong user name or password")

	// A client that marks its request forwarded is checked all the same.
	kvc := quorumkvv1connect.NewKVClient(http.DefaultClient, base)
	req := connect.NewRequest(&v1.PutRequest{Keyspace: "orders", Key: []byte("phone"), Value: []byte("sold to a forger")})
	req.Header().Set(kv.ForwardedHeader, "1")
	_, err = kvc.Put(ctx, req)
	expect("anonymous put marked forwarded", err, connect.CodeUnauthenticated)

	kvGot, err := alice.Get(ctx, "orders", []byte("phone"), client.Quorum{})
	expect("alice get", err, ok)
	if err == nil && string(kvGot.Value) != "in stock" {
		bad = append(bad, fmt.Sprintf("alice read %q", kvGot.Value))
	}
	_, err = alice.Put(ctx, "orders", []byte("phone"), []byte("sold to alice"), client.Quorum{})
	expect("alice put", err, connect.CodePermissionDenied, "alice needs write on keyspace orders", "read on orders")
	_, err = alice.CompareAndSwap(ctx, "orders", []byte("phone"), client.Expect{Version: kvGot.Version}, []byte("sold to alice"))
	expect("alice compare-and-swap", err, connect.CodePermissionDenied)
	_, err = alice.Delete(ctx, "orders", []byte("phone"), client.Quorum{})
	expect("alice delete", err, connect.CodePermissionDenied)
	_, err = alice.Get(ctx, "default", []byte("phone"), client.Quorum{})
	expect("alice get default", err, connect.CodePermissionDenied, "read on keyspace default")
	err = alice.UserAdd(ctx, "eve", "eve-pw", []string{"root"})
	expect("alice user add", err, connect.CodePermissionDenied, "admin on \"*\"")
	err = alice.UserChangePassword(ctx, "root", "owned")
	expect("alice sets root's password", err, connect.CodePermissionDenied)
	err = alice.AuthDisable(ctx)
	expect("alice auth disable", err, connect.CodePermissionDenied)
	_, err = alice.ListKeyspaces(ctx)
	expect("alice list keyspaces", err, ok)

	// Bob is admin on team-*: creates, writes and drops his keyspaces,
	// nothing else.
	_, err = bob.CreateKeyspace(ctx, &v1.Keyspace{Name: "team-b", Mode: v1.Mode_MODE_RAFT, Replicas: 1, Ranges: 1})
	expect("bob creates team-b", err, ok)
	_, err = bob.Put(ctx, "team-b", []byte("k"), []byte("v"), client.Quorum{})
	expect("bob writes team-b", err, ok)
	_, err = bob.CreateKeyspace(ctx, &v1.Keyspace{Name: "payroll", Mode: v1.Mode_MODE_RAFT, Replicas: 1, Ranges: 1})
	expect("bob creates payroll", err, connect.CodePermissionDenied, "admin on keyspace payroll")
	err = bob.DropKeyspace(ctx, "orders")
	expect("bob drops orders", err, connect.CodePermissionDenied)
	err = bob.DropKeyspace(ctx, "team-b")
	expect("bob drops team-b", err, ok)

	// Nothing the refused requests asked for was written.
	kvGot, err = root.Get(ctx, "orders", []byte("phone"), client.Quorum{})
	expect("root get", err, ok)
	if err == nil && string(kvGot.Value) != "in stock" {
		bad = append(bad, fmt.Sprintf("after the refused writes, orders/phone = %q", kvGot.Value))
	}
	if users, err := root.Users(ctx); err != nil || len(users) != 3 {
		bad = append(bad, fmt.Sprintf("users after the refused add: %v %v", users, err))
	}

	// REST: the same rules, with a token.
	token, _, err := alice.Token(ctx)
	expect("alice token", err, ok)
	for _, c := range []struct {
		method, path, auth string
		want               int
	}{
		{"GET", "/v1/kv/orders/phone", "", http.StatusUnauthorized},
		{"GET", "/v1/kv/orders/phone", "Bearer " + token, http.StatusOK},
		{"GET", "/v1/kv/orders/phone", "Bearer " + token + "x", http.StatusUnauthorized},
		{"PUT", "/v1/kv/orders/phone", "Bearer " + token, http.StatusForbidden},
		{"DELETE", "/v1/kv/orders/phone", "Bearer " + token, http.StatusForbidden},
		{"GET", "/v1/kv/orders", "Bearer " + token, http.StatusOK},
		{"GET", "/v1/kv/default", "Bearer " + token, http.StatusForbidden},
		{"GET", "/", "", http.StatusUnauthorized},
		{"GET", "/status.json", "", http.StatusUnauthorized},
		{"GET", "/status.json", "Bearer " + token, http.StatusOK},
		{"GET", "/", "Bearer " + token, http.StatusOK},
		{"GET", "/console.json", "", http.StatusUnauthorized},
		{"GET", "/console/live", "", http.StatusUnauthorized},
		{"GET", "/console/node.json", "", http.StatusUnauthorized},
		{"GET", "/console.json", "Bearer " + token, http.StatusOK},
		{"GET", "/console/node.json", "Bearer " + token, http.StatusOK},
		{"GET", "/console/console.js", "", http.StatusOK},
		{"GET", "/metrics", "", http.StatusOK},
		{"GET", "/livez", "", http.StatusOK},
	} {
		r, _ := http.NewRequestWithContext(ctx, c.method, base+c.path, strings.NewReader("sold via REST"))
		if c.auth != "" {
			r.Header.Set("Authorization", c.auth)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s %s: %v", c.method, c.path, err))
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			bad = append(bad, fmt.Sprintf("%s %s (auth %t): status %d, want %d", c.method, c.path, c.auth != "", resp.StatusCode, c.want))
		}
	}
	if kvGot, err = root.Get(ctx, "orders", []byte("phone"), client.Quorum{}); err == nil && string(kvGot.Value) != "in stock" {
		bad = append(bad, fmt.Sprintf("after the refused REST writes, orders/phone = %q", kvGot.Value))
	}
	return bad
}

// Every call and route checks its caller once auth is on: no caller, a
// bad password or token is Unauthenticated; a user without the
// permission is PermissionDenied, told which, and nothing is written.
func TestAuthEnforced(t *testing.T) {
	base, connectTo := authServer(t, AuthCanary{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	setUpAuth(t, ctx, connectTo("", ""))
	for _, bad := range checkAuth(ctx, base, connectTo) {
		t.Error(bad)
	}

	// A user changes its own password; its old tokens end.
	alice := connectTo("alice", "alice-pw")
	old, _, err := alice.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.UserChangePassword(ctx, "alice", "new-pw"); err != nil {
		t.Fatalf("alice changes her own password: %v", err)
	}
	r, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/kv/orders/phone", nil)
	r.Header.Set("Authorization", "Bearer "+old)
	if resp, err := http.DefaultClient.Do(r); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a token from before the password changed: %v %v, want 401", resp.Status, err)
	}
	if _, err := connectTo("alice", "new-pw").Get(ctx, "orders", []byte("phone"), client.Quorum{}); err != nil {
		t.Errorf("alice with her new password: %v", err)
	}

	// Root turns auth off: anyone may do anything again.
	root := connectTo("root", "root-pw")
	if err := root.AuthDisable(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := connectTo("", "").Put(ctx, "orders", []byte("phone"), []byte("sold"), client.Quorum{}); err != nil {
		t.Errorf("anonymous put with auth off: %v", err)
	}
	if err := root.UserDelete(ctx, "root"); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("deleting root: %v, want InvalidArgument", err)
	}
}

// The canaries: each planted bug in the checks makes checkAuth report.
func TestAuthCanaries(t *testing.T) {
	for name, canary := range map[string]AuthCanary{
		"ReadAllowsWrite":     {ReadAllowsWrite: true},
		"ForwardedSkipsCheck": {ForwardedSkipsCheck: true},
	} {
		t.Run(name, func(t *testing.T) {
			base, connectTo := authServer(t, canary)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			setUpAuth(t, ctx, connectTo("", ""))
			bad := checkAuth(ctx, base, connectTo)
			if len(bad) == 0 {
				t.Fatal("the canary went unnoticed")
			}
			t.Logf("caught: %s", errors.Join(errorsOf(bad)...))
		})
	}
}

func errorsOf(lines []string) []error {
	out := make([]error, len(lines))
	for i, l := range lines {
		out[i] = errors.New(l)
	}
	return out
}

// With a cluster secret, the peer protocol answers only requests that
// carry its digest; the client API does not need it.
func TestPeerProtocolNeedsClusterSecret(t *testing.T) {
	_, h := serveOneNode(t, ServerInfo{NodeName: "n1", ClusterSecretDigest: "d1gest"})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, c := range []struct {
		digest string
		denied bool
	}{{"", true}, {"wrong", true}, {"d1gest", false}} {
		hc := srv.Client()
		if c.digest != "" {
			hc = transport.WithClusterSecret(hc, c.digest)
		}
		_, err := peerv1connect.NewPeerClient(hc, srv.URL).Acceptors(ctx, connect.NewRequest(&peerv1.AcceptorsRequest{}))
		if denied := connect.CodeOf(err) == connect.CodePermissionDenied; denied != c.denied {
			t.Errorf("a peer call with digest %q: %v, want denied %t", c.digest, err, c.denied)
		}
	}
	cl, err := client.New(client.Config{Endpoints: []string{srv.URL}, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Status(ctx); err != nil {
		t.Errorf("the client API with a cluster secret set: %v", err)
	}
}

// Refused callers share catalog catch-ups: each waits for one that began
// after it arrived, and however many arrive at once, one runs at a time
// (a flood of forged tokens costs a barrier per barrier's time, not one
// each).
func TestCatchUpsShared(t *testing.T) {
	var c catchUps
	var mu sync.Mutex
	var runs []time.Time // when each run started
	running := 0
	release := make(chan struct{})
	run := func(context.Context) error {
		mu.Lock()
		runs = append(runs, time.Now())
		running++
		if running > 1 {
			t.Error("two catch-ups at once")
		}
		mu.Unlock()
		<-release
		mu.Lock()
		running--
		mu.Unlock()
		return nil
	}
	ctx := context.Background()
	first := make(chan time.Time)
	go func() {
		arrived := time.Now()
		c.after(ctx, arrived, run)
		first <- arrived
	}()
	waitUntil(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(runs) == 1 })
	// 100 callers arrive while the first run is under way: they all need
	// a run that starts after them, the second.
	var wg sync.WaitGroup
	arrivals := make([]time.Time, 100)
	served := make([]int, 100)
	for i := range arrivals {
		arrivals[i] = time.Now()
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.after(ctx, arrivals[i], run)
			mu.Lock()
			served[i] = len(runs)
			mu.Unlock()
		}()
	}
	time.Sleep(20 * time.Millisecond)
	close(release) // every run ends at once from now on
	<-first
	wg.Wait()
	if len(runs) != 2 {
		t.Fatalf("%d catch-ups for 101 callers in two waves, want 2", len(runs))
	}
	for i, a := range arrivals {
		if runs[1].Before(a) || served[i] != 2 {
			t.Errorf("caller %d (arrived %v) was served by a run that started at %v", i, a, runs[1])
		}
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(time.Millisecond)
	}
}
