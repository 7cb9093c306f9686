package auth

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/kv/catalog"
)

// A token and the Authorization header come from anyone, before any
// check. The fuzz targets require that no input panics, that every
// refusal is ErrUnauthenticated, and that an accepted token names a user
// the catalog has, at its generation, and has not expired. Their seeds
// run as plain tests; `go test -run '^$' -fuzz '^FuzzVerifyToken$'
// ./kv/auth` searches further (.ci/run does, for a bounded time).

// tokenSeeds are a valid token of alice, its truncations, one signed with
// another key, and garbage.
func tokenSeeds(tb testing.TB, v *catalog.AuthView) []string {
	alice := user(tb, v, "alice")
	token := mintWith(v.Settings.TokenKey, alice)
	seeds := []string{token, mintWith(testKey(2), alice), "", "v1..", "v1.AAAA.AAAA", "\x00\xffv1.", strings.Repeat("v1.", 200)}
	for _, n := range []int{len(token) - 1, len(token) - 43, len(token) / 2, len(tokenPrefix) + 1, len(tokenPrefix)} {
		seeds = append(seeds, token[:n])
	}
	return seeds
}

func FuzzVerifyToken(f *testing.F) {
	v := newCatalog(f).AuthView()
	for _, s := range tokenSeeds(f, v) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		u, err := VerifyToken(v, token, testNow)
		if err != nil {
			if !errors.Is(err, catalog.ErrUnauthenticated) {
				t.Fatalf("%q: refused with %v, want ErrUnauthenticated", token, err)
			}
			return
		}
		if got, ok := v.User(u.Name); !ok || !reflect.DeepEqual(got, u) {
			t.Fatalf("%q: accepted as %+v, which the catalog has as %+v (%v)", token, u, got, ok)
		}
		exp, gen := claims(t, token)
		if !testNow.Before(exp) || gen != u.Generation {
			t.Fatalf("%q: accepted, expiring %v (now %v) at generation %d (the user's %d)", token, exp, testNow, gen, u.Generation)
		}
	})
}

// claims reads an accepted token's expiry and generation on its own,
// apart from VerifyToken.
func claims(t *testing.T, token string) (time.Time, uint64) {
	t.Helper()
	p64, _, _ := strings.Cut(strings.TrimPrefix(token, tokenPrefix), ".")
	payload, err := base64.RawURLEncoding.DecodeString(p64)
	if err != nil || len(payload) < 16 {
		t.Fatalf("%q was accepted, but its payload does not decode: %v", token, err)
	}
	return time.UnixMilli(int64(binary.BigEndian.Uint64(payload))), binary.BigEndian.Uint64(payload[8:])
}

func FuzzIdentifyHeader(f *testing.F) {
	v := newCatalog(f).AuthView()
	for _, s := range tokenSeeds(f, v) {
		for _, scheme := range []string{"Bearer ", "bearer ", "Bearer  ", ""} {
			f.Add(scheme + s)
		}
	}
	f.Add("Basic YWxpY2U6cHc=")
	f.Add("Bearer")
	f.Fuzz(func(t *testing.T, header string) {
		c, err := Identify(v, header, nil, testNow)
		switch {
		case header == "":
			if err != nil || c != (Caller{}) {
				t.Fatalf("no header, no certificate: %+v, %v; want no one", c, err)
			}
		case err != nil:
			if !errors.Is(err, catalog.ErrUnauthenticated) {
				t.Fatalf("%q: refused with %v, want ErrUnauthenticated", header, err)
			}
		default:
			// A header that is there is a credential: it holds or is
			// refused, never taken for no one.
			if _, ok := v.User(c.User); !ok || c.Method != MethodToken || !strings.HasPrefix(header, "Bearer ") {
				t.Fatalf("%q: identified as %+v", header, c)
			}
		}
	})
}
