package auth

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/certs"
	"github.com/quorumkv/quorumkv/kv/catalog"
)

// cheapKDF keeps each hash in the tests at 64 KiB and one pass; the
// parameters travel in the hash, so the code under test is the same.
var cheapKDF = KDF{Memory: 64, Time: 1, Threads: 1}

// testNow is the tests' clock: tokens are minted and checked against it,
// never against time.Now.
var testNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, catalog.TokenKeyBytes) }

// newCatalog returns a catalog with auth on (key 1), role reader (read on
// orders), user alice (reader, generation 1) and user bob (no roles).
func newCatalog(tb testing.TB) *catalog.Catalog {
	tb.Helper()
	c := catalog.NewCatalog()
	for _, op := range []catalog.AuthOp{
		{Enable: &catalog.AuthSettings{TokenKey: testKey(1)}},
		{AddRole: "reader"},
		{Grant: &catalog.RolePermission{Role: "reader", Permission: catalog.Permission{Keyspace: "orders", Access: catalog.AccessRead}}},
		{AddUser: &catalog.User{Name: "alice", PasswordHash: "unused", Roles: []string{"reader"}}},
		{AddUser: &catalog.User{Name: "bob"}},
	} {
		apply(tb, c, op)
	}
	return c
}

func apply(tb testing.TB, c *catalog.Catalog, op catalog.AuthOp) {
	tb.Helper()
	if _, _, err := c.Apply(&catalog.CatalogOp{Auth: &op}); err != nil {
		tb.Fatalf("%+v: %v", op, err)
	}
}

func user(tb testing.TB, v *catalog.AuthView, name string) catalog.User {
	tb.Helper()
	u, ok := v.User(name)
	if !ok {
		tb.Fatalf("user %s is missing", name)
	}
	return u
}

// wantRefusal checks that err marks an unauthenticated caller, and marks
// it stale (the caller may catch its catalog up and ask again) exactly
// when stale.
func wantRefusal(t *testing.T, err error, stale bool) {
	t.Helper()
	if !errors.Is(err, catalog.ErrUnauthenticated) {
		t.Fatalf("err %v, want ErrUnauthenticated", err)
	}
	if errors.Is(err, ErrStale) != stale {
		t.Errorf("err %v: stale %v, want %v", err, !stale, stale)
	}
}

func TestHashAndVerifyPassword(t *testing.T) {
	ctx := context.Background()
	h, err := HashPassword(ctx, "correct horse", cheapKDF)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Errorf("hash %q: want the PHC form with the KDF's parameters", h)
	}
	for _, tc := range []struct {
		password string
		want     bool
	}{
		{"correct horse", true},
		{"correct horse ", false},
		{"Correct horse", false},
		{"", false},
		{strings.Repeat("x", MaxPasswordBytes+1), false},
	} {
		if got, err := VerifyPassword(ctx, h, tc.password); got != tc.want || err != nil {
			t.Errorf("password %.20q: %v, %v; want %v", tc.password, got, err, tc.want)
		}
	}
	// A fresh salt per hash: equal passwords do not give equal hashes.
	if h2, err := HashPassword(ctx, "correct horse", cheapKDF); err != nil || h2 == h {
		t.Errorf("a second hash of the same password: %q, %v", h2, err)
	}
	if _, err := HashPassword(ctx, "", cheapKDF); !errors.Is(err, catalog.ErrInvalidArgument) {
		t.Errorf("empty password: %v, want invalid argument", err)
	}
	if _, err := HashPassword(ctx, strings.Repeat("x", MaxPasswordBytes+1), cheapKDF); !errors.Is(err, catalog.ErrLimit) {
		t.Errorf("a password over MaxPasswordBytes: %v, want ErrLimit", err)
	}
}

// holdKDFSlots takes every KDF slot until the test ends: a password check
// that gets as far as hashing then waits, and with a cancelled context
// returns the context's error, so a (false, nil) answer proves it never
// tried.
func holdKDFSlots(t *testing.T) {
	t.Helper()
	for range cap(kdfSlots) {
		kdfSlots <- struct{}{}
	}
	t.Cleanup(func() {
		for range cap(kdfSlots) {
			<-kdfSlots
		}
	})
}

// A stored hash is read before it is used: parameters out of bounds
// would let one bad catalog entry take a node's memory or CPU on every
// login (or panic argon2, at zero passes or lanes), so they match nothing
// and cost nothing.
func TestParseHashRefusesOutOfBounds(t *testing.T) {
	good, err := HashPassword(context.Background(), "pw", cheapKDF)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, "$") // "", argon2id, v=19, m=..,t=..,p=.., salt, key
	with := func(i int, s string) string {
		p := append([]string(nil), parts...)
		p[i] = s
		return strings.Join(p, "$")
	}
	b64 := base64.RawStdEncoding
	bad := map[string]string{
		"memory 2000000 KiB":       with(3, "m=2000000,t=1,p=1"),
		"memory under 8 KiB":       with(3, "m=4,t=1,p=1"),
		"100 passes":               with(3, "m=64,t=100,p=1"),
		"no passes":                with(3, "m=64,t=0,p=1"),
		"no lanes":                 with(3, "m=64,t=1,p=0"),
		"17 lanes":                 with(3, "m=64,t=1,p=17"),
		"negative memory":          with(3, "m=-64,t=1,p=1"),
		"no parameters":            with(3, ""),
		"a 4-byte salt":            with(4, b64.EncodeToString([]byte("salt"))),
		"a salt not in base64":     with(4, "!!!!!!!!!!!!"),
		"an 8-byte key":            with(5, b64.EncodeToString(make([]byte, 8))),
		"argon2i":                  with(1, "argon2i"),
		"another version":          with(2, "v=16"),
		"a field too many":         good + "$x",
		"no leading $":             strings.TrimPrefix(good, "$"),
		"not a hash":               "hunter2",
		"empty (a cert-only user)": "",
	}
	if _, _, _, ok := parseHash(good); !ok {
		t.Fatalf("parseHash refuses a hash HashPassword wrote: %s", good)
	}
	holdKDFSlots(t)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := VerifyPassword(cancelled, good, "pw"); !errors.Is(err, context.Canceled) {
		t.Fatalf("a good hash with every KDF slot held: %v, want the context's error (else this test proves nothing)", err)
	}
	for name, h := range bad {
		if k, _, _, ok := parseHash(h); ok {
			t.Errorf("%s: parseHash accepted %q as %+v", name, h, k)
		}
		if ok, err := VerifyPassword(cancelled, h, "pw"); ok || err != nil {
			t.Errorf("%s: VerifyPassword %v, %v; want false without hashing", name, ok, err)
		}
	}
}

func TestTokenAccepted(t *testing.T) {
	v := newCatalog(t).AuthView()
	alice := user(t, v, "alice")
	token, exp := Mint(v.Settings.TokenKey, alice, testNow, DefaultTokenTTL)
	if !exp.Equal(testNow.Add(DefaultTokenTTL)) {
		t.Errorf("expires %v, want %v", exp, testNow.Add(DefaultTokenTTL))
	}
	for _, now := range []time.Time{testNow, exp.Add(-time.Millisecond)} {
		if u, err := VerifyToken(v, token, now); err != nil || u.Name != "alice" || u.Generation != 1 {
			t.Errorf("at %v: %+v, %v; want alice", now, u, err)
		}
	}
	// root is implicit, at generation 0, until its password is set.
	rootToken, _ := Mint(v.Settings.TokenKey, user(t, v, catalog.RootUser), testNow, time.Minute)
	if u, err := VerifyToken(v, rootToken, testNow); err != nil || u.Name != catalog.RootUser {
		t.Errorf("root's token: %+v, %v", u, err)
	}
}

// tamper returns token with f applied to its decoded payload, the
// signature kept.
func tamper(t *testing.T, token string, f func(payload []byte)) string {
	t.Helper()
	p64, s64, _ := strings.Cut(strings.TrimPrefix(token, tokenPrefix), ".")
	payload, err := base64.RawURLEncoding.DecodeString(p64)
	if err != nil {
		t.Fatal(err)
	}
	f(payload)
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(payload) + "." + s64
}

// Every refusal is ErrUnauthenticated. ErrStale marks those this node's
// catalog may be behind on: a token key, a user or a password generation
// newer than it knows. A signature that does not hold is one of those
// (the node cannot tell a forgery from a key enabled a moment ago
// elsewhere); expiry, an older password and a token that is not one are
// final.
func TestTokenRefused(t *testing.T) {
	c := newCatalog(t)
	v := c.AuthView()
	key := v.Settings.TokenKey
	alice, bob := user(t, v, "alice"), user(t, v, "bob")
	token, exp := Mint(key, alice, testNow, DefaultTokenTTL)

	apply(t, c, catalog.AuthOp{DeleteUser: "bob"})
	apply(t, c, catalog.AuthOp{SetPassword: &catalog.User{Name: "alice", PasswordHash: "new"}})
	later := c.AuthView() // bob deleted, alice at generation 2

	bobToken, _ := Mint(key, bob, testNow, DefaultTokenTTL)
	newer := alice
	newer.Generation = 2
	newerToken, _ := Mint(key, newer, testNow, DefaultTokenTTL)
	long := catalog.User{Name: strings.Repeat("a", 400), Generation: 1}
	longToken, _ := Mint(key, long, testNow, DefaultTokenTTL)
	shortPayload := make([]byte, 16) // an expiry and a generation, no name
	b64 := base64.RawURLEncoding
	noName := tokenPrefix + b64.EncodeToString(shortPayload) + "." + b64.EncodeToString(sign(key, shortPayload))

	for _, tc := range []struct {
		name  string
		view  *catalog.AuthView
		token string
		now   time.Time
		stale bool
		says  string // a part of the error's text
	}{
		{name: "expired at its expiry", view: v, token: token, now: exp, says: "expired"},
		{name: "expired an hour ago", view: v, token: token, now: exp.Add(time.Hour), says: "expired"},
		{name: "signed with another key", view: v, token: mintWith(testKey(2), alice), now: testNow, stale: true, says: "signed"},
		{name: "a byte of the name flipped", view: v, now: testNow, stale: true, says: "signed",
			token: tamper(t, token, func(p []byte) { p[16] ^= 1 })},
		{name: "expiry pushed later", view: v, now: testNow, stale: true, says: "signed",
			token: tamper(t, token, func(p []byte) { p[0] ^= 1 })},
		{name: "generation lowered", view: later, now: testNow, stale: true, says: "signed",
			token: tamper(t, newerToken, func(p []byte) { p[15] = 1 })},
		{name: "user deleted", view: later, token: bobToken, now: testNow, stale: true, says: "bob"},
		{name: "password changed since (older generation)", view: later, token: token, now: testNow, says: "changed"},
		{name: "a generation this node does not know yet", view: v, token: newerToken, now: testNow, stale: true, says: "does not know"},
		{name: "longer than 512 bytes", view: v, token: longToken, now: testNow, says: "at most 512"},
		{name: "empty", view: v, token: "", now: testNow, says: "not one of ours"},
		{name: "another version", view: v, token: "v2." + strings.TrimPrefix(token, tokenPrefix), now: testNow, says: "not one of ours"},
		{name: "the scheme left in", view: v, token: "Bearer " + token, now: testNow, says: "not one of ours"},
		{name: "prefix only", view: v, token: tokenPrefix, now: testNow, says: "malformed"},
		{name: "no signature", view: v, token: strings.SplitAfter(token, ".")[0] + strings.SplitAfter(token, ".")[1], now: testNow, says: "signed", stale: true},
		{name: "no dot", view: v, token: tokenPrefix + strings.ReplaceAll(strings.TrimPrefix(token, tokenPrefix), ".", ""), now: testNow, says: "malformed"},
		{name: "not base64", view: v, token: "v1.!!!!.????", now: testNow, says: "malformed"},
		{name: "padded base64", view: v, token: tokenPrefix + base64.URLEncoding.EncodeToString(make([]byte, 20)) + ".AA", now: testNow, says: "malformed"},
		{name: "a signed payload without a name", view: v, token: noName, now: testNow, says: "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := VerifyToken(tc.view, tc.token, tc.now)
			if err == nil {
				t.Fatalf("accepted as %+v", u)
			}
			wantRefusal(t, err, tc.stale)
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("err %q does not say %q", err, tc.says)
			}
		})
	}
}

func mintWith(key []byte, u catalog.User) string {
	token, _ := Mint(key, u, testNow, DefaultTokenTTL)
	return token
}

// connStates makes a CA, a node certificate and client certificates of
// users with the certs package, and returns the connection states a
// server sees from a node and from each user once the handshake verified
// their chains.
func connStates(t *testing.T, users ...string) (node *tls.ConnectionState, clients map[string]*tls.ConnectionState) {
	t.Helper()
	dir, caKey := t.TempDir(), filepath.Join(t.TempDir(), "ca.key")
	if err := certs.CreateCA(dir, caKey, certs.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := certs.CreateNode(dir, caKey, []string{"localhost"}, certs.Options{}); err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		if err := certs.CreateClient(dir, caKey, u, certs.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	roots := x509.NewCertPool()
	roots.AddCert(readCert(t, filepath.Join(dir, certs.CAFile)))
	verified := func(file string) *tls.ConnectionState {
		crt := readCert(t, filepath.Join(dir, file))
		chains, err := crt.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		return &tls.ConnectionState{HandshakeComplete: true, PeerCertificates: []*x509.Certificate{crt}, VerifiedChains: chains}
	}
	clients = map[string]*tls.ConnectionState{}
	for _, u := range users {
		crt, _ := certs.ClientFiles(u)
		clients[u] = verified(crt)
	}
	return verified(certs.NodeFile), clients
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	crt, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return crt
}

func TestIdentify(t *testing.T) {
	v := newCatalog(t).AuthView()
	token := mintWith(v.Settings.TokenKey, user(t, v, "alice"))
	node, clients := connStates(t, "alice", "mallory")
	for _, tc := range []struct {
		name          string
		authorization string
		cs            *tls.ConnectionState
		want          Caller
	}{
		{"no one", "", nil, Caller{}},
		{"no one, over TLS without a client certificate", "", &tls.ConnectionState{HandshakeComplete: true}, Caller{}},
		{"a bearer token", "Bearer " + token, nil, Caller{User: "alice", Method: MethodToken}},
		{"a bearer token with spaces around it", "Bearer  " + token + " ", nil, Caller{User: "alice", Method: MethodToken}},
		{"a node certificate", "", node, Caller{Method: MethodNode}},
		{"a client certificate", "", clients["alice"], Caller{User: "alice", Method: MethodCertificate}},
		// A token says who the request is for, whichever connection
		// carries it: a node forwards its clients' tokens.
		{"a token over a node's connection", "Bearer " + token, node, Caller{User: "alice", Method: MethodToken}},
	} {
		if got, err := Identify(v, tc.authorization, tc.cs, testNow); err != nil || got != tc.want {
			t.Errorf("%s: %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
	// A credential that does not hold is refused, never taken for no one.
	for _, tc := range []struct {
		name          string
		authorization string
		cs            *tls.ConnectionState
		now           time.Time
		stale         bool
	}{
		{"a Basic header", "Basic YWxpY2U6cHc=", nil, testNow, false},
		{"Basic x", "Basic x", nil, testNow, false},
		{"a bare token", token, nil, testNow, false},
		{"Bearer and nothing", "Bearer ", nil, testNow, false},
		{"an expired token", "Bearer " + token, nil, testNow.Add(time.Hour), false},
		{"a bad header beside a node certificate", "Basic x", node, testNow, false},
		{"a client certificate of a user the catalog lacks", "", clients["mallory"], testNow, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Identify(v, tc.authorization, tc.cs, tc.now)
			if err == nil {
				t.Fatalf("identified as %+v", c)
			}
			wantRefusal(t, err, tc.stale)
		})
	}
}

func TestAuthorize(t *testing.T) {
	c := newCatalog(t)
	v := c.AuthView()
	alice := Caller{User: "alice", Method: MethodToken}
	apply(t, c, catalog.AuthOp{Disable: true})
	off := c.AuthView()

	allowed := []struct {
		name     string
		view     *catalog.AuthView
		caller   Caller
		keyspace string
		need     catalog.Access
	}{
		{"auth off: no one may administer the cluster", off, Caller{}, "", catalog.AccessAdmin},
		{"auth off: a user beyond its roles", off, alice, "orders", catalog.AccessAdmin},
		{"a node", v, Caller{Method: MethodNode}, "", catalog.AccessAdmin},
		{"root", v, Caller{User: catalog.RootUser, Method: MethodCertificate}, "", catalog.AccessAdmin},
		{"a user within its roles", v, alice, "orders", catalog.AccessRead},
		{"any user, for what any logged-in user may do", v, Caller{User: "bob", Method: MethodToken}, "", AnyUser},
	}
	for _, tc := range allowed {
		if err := Authorize(tc.view, tc.caller, tc.keyspace, tc.need); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}

	err := Authorize(v, Caller{}, "orders", catalog.AccessRead)
	if !errors.Is(err, catalog.ErrUnauthenticated) || !strings.Contains(err.Error(), "kvctl --user") {
		t.Errorf("no one, with auth on: %v; want ErrUnauthenticated telling how to log in (kvctl --user)", err)
	}
	err = Authorize(v, Caller{}, "", AnyUser)
	if !errors.Is(err, catalog.ErrUnauthenticated) {
		t.Errorf("no one, for what any user may do: %v; want ErrUnauthenticated", err)
	}
	err = Authorize(v, Caller{User: "carol", Method: MethodCertificate}, "orders", catalog.AccessRead)
	if !errors.Is(err, catalog.ErrUnauthenticated) || !errors.Is(err, ErrStale) {
		t.Errorf("a user this node's catalog lacks: %v; want ErrUnauthenticated and ErrStale", err)
	}

	for _, tc := range []struct {
		keyspace string
		need     catalog.Access
		says     []string
	}{
		{"orders", catalog.AccessWrite, []string{"alice", "write", "keyspace orders", "read on orders"}},
		{"accounts", catalog.AccessRead, []string{"alice", "read", "keyspace accounts"}},
		{"", catalog.AccessAdmin, []string{"alice", "admin", `the cluster (admin on "*")`}},
	} {
		err := Authorize(v, alice, tc.keyspace, tc.need)
		if !errors.Is(err, catalog.ErrPermissionDenied) || errors.Is(err, catalog.ErrUnauthenticated) {
			t.Errorf("alice %s on %q: %v; want only ErrPermissionDenied", tc.need, tc.keyspace, err)
			continue
		}
		for _, s := range tc.says {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("alice %s on %q: %q does not say %q", tc.need, tc.keyspace, err, s)
			}
		}
	}
	if err := Authorize(v, Caller{User: "bob", Method: MethodToken}, "orders", catalog.AccessRead); err == nil || !strings.Contains(err.Error(), "grant nothing") {
		t.Errorf("bob, who holds no role: %v; want a refusal saying its roles grant nothing", err)
	}
}

// A user deleted and added again under the same name is a new user (an
// operator's way to reset one): the tokens of the old one must not hold
// for it, whatever their generations.
func TestTokenOfADeletedUserDoesNotHoldForItsSuccessor(t *testing.T) {
	c := newCatalog(t)
	v := c.AuthView()
	old := mintWith(v.Settings.TokenKey, user(t, v, "alice"))
	apply(t, c, catalog.AuthOp{DeleteUser: "alice"})
	apply(t, c, catalog.AuthOp{AddUser: &catalog.User{Name: "alice", PasswordHash: "new", Roles: []string{"reader"}}})
	if u, err := VerifyToken(c.AuthView(), old, testNow); err == nil {
		t.Errorf("the deleted alice's token holds for the new alice: %+v", u)
	}
}

// BenchmarkAuthorizeToken is the cost auth adds to every request of a
// logged-in client: check the token, find the user, decide.
func BenchmarkAuthorizeToken(b *testing.B) {
	v := newCatalog(b).AuthView()
	token, _ := Mint(v.Settings.TokenKey, user(b, v, "alice"), testNow, time.Hour)
	header := "Bearer " + token
	b.ReportAllocs()
	for b.Loop() {
		caller, err := Identify(v, header, nil, testNow)
		if err != nil {
			b.Fatal(err)
		}
		if err := Authorize(v, caller, "orders", catalog.AccessRead); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyPassword is the cost of one login at DefaultKDF.
func BenchmarkVerifyPassword(b *testing.B) {
	hash, err := HashPassword(context.Background(), "a password", DefaultKDF)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if ok, err := VerifyPassword(context.Background(), hash, "a password"); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}
