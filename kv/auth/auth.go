// Package auth authenticates the callers of a node's API and checks what
// their roles allow (docs/security.md). Users, roles and the token key
// live in the catalog (kv/catalog/auth.go); this package hashes
// passwords, mints and checks tokens, and decides each request.
//
// A caller is who a request comes from:
//   - a bearer token ("Authorization: Bearer ..."), minted by Mint after
//     a password check and signed with the cluster's token key: it names
//     the user, the generation of its password, and when it expires;
//   - else a client certificate of the cluster's CA: its Common Name is
//     the user ("node" is a node: the nodes forward requests to each
//     other, and one that reached a node was checked where it entered);
//   - else no one.
package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/quorumkv/quorumkv/certs"
	"github.com/quorumkv/quorumkv/kv/catalog"
)

// KDF is the cost of a password hash: Argon2id with RFC 9106's second
// recommended setting (64 MiB, 3 passes), two lanes for the machines
// quorumkv runs on. Hashes carry their parameters, so a change here
// applies to new passwords only.
type KDF struct {
	Memory  uint32 // KiB
	Time    uint32
	Threads uint8
}

// DefaultKDF hashes new passwords.
var DefaultKDF = KDF{Memory: 64 << 10, Time: 3, Threads: 2}

// kdfSlots bounds the password checks and hashes running at once: each
// holds KDF.Memory, so a flood of logins could otherwise take a node's
// memory.
var kdfSlots = make(chan struct{}, 2)

// Bounds on a stored hash's parameters, checked before it is used.
const (
	maxKDFMemory  = 1 << 20 // KiB: 1 GiB
	maxKDFTime    = 16
	maxKDFThreads = 16
	saltBytes     = 16
	keyBytes      = 32
	// MaxPasswordBytes bounds a password.
	MaxPasswordBytes = 1024
)

// HashPassword returns password's Argon2id hash in PHC string form
// ($argon2id$v=19$m=...,t=...,p=...$salt$hash), waiting for a slot
// (kdfSlots).
func HashPassword(ctx context.Context, password string, k KDF) (string, error) {
	if err := CheckPassword(password); err != nil {
		return "", err
	}
	salt := make([]byte, saltBytes)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	release, err := acquire(ctx)
	if err != nil {
		return "", err
	}
	defer release()
	key := argon2.IDKey([]byte(password), salt, k.Time, k.Memory, k.Threads, keyBytes)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, k.Memory, k.Time, k.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// CheckPassword checks a new password against the rules.
func CheckPassword(password string) error {
	switch {
	case password == "":
		return fmt.Errorf("%w: a password may not be empty", catalog.ErrInvalidArgument)
	case len(password) > MaxPasswordBytes:
		return fmt.Errorf("%w: a password is at most %d bytes (MaxPasswordBytes), not %d", catalog.ErrLimit, MaxPasswordBytes, len(password))
	}
	return nil
}

func acquire(ctx context.Context) (func(), error) {
	select {
	case kdfSlots <- struct{}{}:
		return func() { <-kdfSlots }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting to check a password: %w", ctx.Err())
	}
}

// VerifyPassword reports whether password matches hash (HashPassword's
// form), waiting for a slot (kdfSlots). A hash it cannot read matches
// nothing.
func VerifyPassword(ctx context.Context, hash, password string) (bool, error) {
	k, salt, want, ok := parseHash(hash)
	if !ok || len(password) > MaxPasswordBytes {
		return false, nil
	}
	release, err := acquire(ctx)
	if err != nil {
		return false, err
	}
	defer release()
	got := argon2.IDKey([]byte(password), salt, k.Time, k.Memory, k.Threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

func parseHash(hash string) (k KDF, salt, key []byte, ok bool) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return KDF{}, nil, nil, false
	}
	var m, t, p uint64
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil ||
		m < 8 || m > maxKDFMemory || t < 1 || t > maxKDFTime || p < 1 || p > maxKDFThreads {
		return KDF{}, nil, nil, false
	}
	b64 := base64.RawStdEncoding
	salt, err1 := b64.DecodeString(parts[4])
	key, err2 := b64.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(salt) < 8 || len(salt) > 64 || len(key) < 16 || len(key) > 64 {
		return KDF{}, nil, nil, false
	}
	return KDF{Memory: uint32(m), Time: uint32(t), Threads: uint8(p)}, salt, key, true
}

// Tokens: "v1." + base64url(payload) + "." + base64url(HMAC-SHA256 of the
// payload under the cluster's token key). The payload is the expiry (Unix
// milliseconds, 8 bytes), the password's generation (8 bytes) and the
// user's name.

// DefaultTokenTTL is how long a token is accepted: a client logs in
// again when it nears its end.
const DefaultTokenTTL = 10 * time.Minute

const (
	tokenPrefix   = "v1."
	maxTokenBytes = 512
)

// Mint returns a token for user, signed with key, expiring at now+ttl.
func Mint(key []byte, user catalog.User, now time.Time, ttl time.Duration) (string, time.Time) {
	exp := now.Add(ttl)
	payload := binary.BigEndian.AppendUint64(nil, uint64(exp.UnixMilli()))
	payload = binary.BigEndian.AppendUint64(payload, user.Generation)
	payload = append(payload, user.Name...)
	b64 := base64.RawURLEncoding
	return tokenPrefix + b64.EncodeToString(payload) + "." + b64.EncodeToString(sign(key, payload)), time.UnixMilli(exp.UnixMilli())
}

func sign(key, payload []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(payload)
	return m.Sum(nil)
}

// ErrStale marks an authentication that failed on what this node's
// catalog may not hold yet (a user, a password or a token key changed a
// moment ago on another node): the caller may catch its catalog up and
// try again.
var ErrStale = errors.New("the catalog may be behind")

// VerifyToken returns the user a token names, if view's token key signed
// it, it has not expired, and the user's password has not changed since.
func VerifyToken(view *catalog.AuthView, token string, now time.Time) (catalog.User, error) {
	body, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok || len(token) > maxTokenBytes {
		return catalog.User{}, fmt.Errorf("%w: the token is not one of ours (want %q..., at most %d bytes)", catalog.ErrUnauthenticated, tokenPrefix, maxTokenBytes)
	}
	p64, s64, ok := strings.Cut(body, ".")
	b64 := base64.RawURLEncoding
	payload, err1 := b64.DecodeString(p64)
	mac, err2 := b64.DecodeString(s64)
	if !ok || err1 != nil || err2 != nil || len(payload) < 17 {
		return catalog.User{}, fmt.Errorf("%w: the token is malformed", catalog.ErrUnauthenticated)
	}
	if len(view.Settings.TokenKey) == 0 {
		// Auth is off (or this node has not applied its enabling yet):
		// no key, so no token holds.
		return catalog.User{}, fmt.Errorf("%w: %w: authentication is off on this node, so no token is valid", catalog.ErrUnauthenticated, ErrStale)
	}
	if !hmac.Equal(mac, sign(view.Settings.TokenKey, payload)) {
		return catalog.User{}, fmt.Errorf("%w: %w: the token was not signed by this cluster's current key (issued before auth was last enabled?): log in again",
			catalog.ErrUnauthenticated, ErrStale)
	}
	exp := time.UnixMilli(int64(binary.BigEndian.Uint64(payload)))
	gen := binary.BigEndian.Uint64(payload[8:])
	name := string(payload[16:])
	if !now.Before(exp) {
		return catalog.User{}, fmt.Errorf("%w: the token of user %s expired at %s: log in again", catalog.ErrUnauthenticated, name, exp.UTC().Format(time.RFC3339))
	}
	u, ok := view.User(name)
	switch {
	case !ok:
		return catalog.User{}, fmt.Errorf("%w: %w: the token names user %s, which the cluster does not have", catalog.ErrUnauthenticated, ErrStale, name)
	case gen > u.Generation:
		return catalog.User{}, fmt.Errorf("%w: %w: the token of user %s names a password this node does not know yet", catalog.ErrUnauthenticated, ErrStale, name)
	case gen < u.Generation:
		return catalog.User{}, fmt.Errorf("%w: the password of user %s changed after the token was issued: log in again", catalog.ErrUnauthenticated, name)
	}
	return u, nil
}

// Caller is who a request comes from.
type Caller struct {
	// User is the user's name, "" for a node or no one.
	User string
	// Method is how the caller was found: "token", "certificate", "node"
	// or "" (no one).
	Method string
}

const (
	MethodToken       = "token"
	MethodCertificate = "certificate"
	MethodNode        = "node"
)

// Identify finds the caller of a request from its Authorization header
// and its connection's TLS state. A credential that does not hold is an
// error, never taken for no one.
func Identify(view *catalog.AuthView, authorization string, cs *tls.ConnectionState, now time.Time) (Caller, error) {
	if authorization != "" {
		token, ok := strings.CutPrefix(authorization, "Bearer ")
		if !ok {
			return Caller{}, fmt.Errorf("%w: the Authorization header is not 'Bearer <token>'", catalog.ErrUnauthenticated)
		}
		u, err := VerifyToken(view, strings.TrimSpace(token), now)
		if err != nil {
			return Caller{}, err
		}
		return Caller{User: u.Name, Method: MethodToken}, nil
	}
	if certs.PeerRole(cs) {
		return Caller{Method: MethodNode}, nil
	}
	if name := certs.User(cs); name != "" {
		if _, ok := view.User(name); !ok {
			return Caller{}, fmt.Errorf("%w: %w: the client certificate names user %s, which the cluster does not have (kvctl user add makes it)",
				catalog.ErrUnauthenticated, ErrStale, name)
		}
		return Caller{User: name, Method: MethodCertificate}, nil
	}
	return Caller{}, nil
}

// AnyUser, as the access a request needs, lets every logged-in caller
// make it (cluster status, members, the keyspaces' names).
const AnyUser catalog.Access = ""

// Authorize decides whether caller may have access need on keyspace (""
// for the cluster itself). With auth off, every caller may do anything;
// a node may do anything.
func Authorize(view *catalog.AuthView, caller Caller, keyspace string, need catalog.Access) error {
	if !view.Settings.Enabled || caller.Method == MethodNode {
		return nil
	}
	if caller.User == "" {
		return fmt.Errorf("%w: authentication is on: log in with kvctl --user NAME (a password, or the client certificate "+
			"client.NAME.crt in --certs-dir), or send 'Authorization: Bearer <token>' from Auth.Authenticate", catalog.ErrUnauthenticated)
	}
	u, ok := view.User(caller.User)
	if !ok {
		return fmt.Errorf("%w: %w: user %s is not in this node's catalog", catalog.ErrUnauthenticated, ErrStale, caller.User)
	}
	if need == AnyUser || view.Allows(u, keyspace, need) {
		return nil
	}
	what := "the cluster (admin on \"*\")"
	if keyspace != "" {
		what = "keyspace " + keyspace
	}
	return fmt.Errorf("%w: user %s needs %s on %s; its roles (%s) grant %s (kvctl role grant gives more)",
		catalog.ErrPermissionDenied, u.Name, need, what, strings.Join(u.Roles, ", "), describe(view.Permissions(u)))
}

func describe(perms []catalog.Permission) string {
	if len(perms) == 0 {
		return "nothing"
	}
	parts := make([]string, len(perms))
	for i, p := range perms {
		parts[i] = p.String()
	}
	return strings.Join(parts, ", ")
}

// NewTokenKey returns a new random token key.
func NewTokenKey() ([]byte, error) {
	key := make([]byte, catalog.TokenKeyBytes)
	_, err := rand.Read(key)
	return key, err
}
