package catalog

import (
	"bytes"
	"errors"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// authFixture is a catalog with auth enabled, role reader (read on
// orders), role writer (write on team-*), user alice (reader) and user
// bob (reader, writer). meta is meta's data as the writes of every op
// applied so far left it, so a test can replay it as a restarting node
// does (reload).
type authFixture struct {
	c    *Catalog
	meta map[string][]byte
}

func tokenKey(b byte) []byte { return bytes.Repeat([]byte{b}, TokenKeyBytes) }

func newAuthFixture(t *testing.T) *authFixture {
	t.Helper()
	f := &authFixture{c: NewCatalog(), meta: map[string][]byte{}}
	for _, op := range []AuthOp{
		{Enable: &AuthSettings{TokenKey: tokenKey(1)}},
		{AddRole: "reader"},
		{Grant: &RolePermission{Role: "reader", Permission: Permission{Keyspace: "orders", Access: AccessRead}}},
		{AddRole: "writer"},
		{Grant: &RolePermission{Role: "writer", Permission: Permission{Keyspace: "team-*", Access: AccessWrite}}},
		{AddUser: &User{Name: "alice", PasswordHash: "hash-a", Roles: []string{"reader"}}},
		{AddUser: &User{Name: "bob", PasswordHash: "hash-b", Roles: []string{"writer", "reader"}}},
	} {
		if _, err := f.apply(op); err != nil {
			t.Fatalf("fixture op %+v: %v", op, err)
		}
	}
	return f
}

// apply applies op and records its writes in meta, a nil value deleting
// its key, as meta's data does.
func (f *authFixture) apply(op AuthOp) ([]catalogWrite, error) {
	writes, _, err := f.c.Apply(&CatalogOp{Auth: &op})
	for _, w := range writes {
		if w.Value == nil {
			delete(f.meta, string(w.Key))
		} else {
			f.meta[string(w.Key)] = w.Value
		}
	}
	return writes, err
}

// reload rebuilds a catalog from meta alone, as a node does at start
// (Store.loadCatalog).
func (f *authFixture) reload(t *testing.T) *Catalog {
	t.Helper()
	c := NewCatalog()
	for _, k := range slices.Sorted(maps.Keys(f.meta)) {
		if err := c.Load([]byte(k), f.meta[k]); err != nil {
			t.Fatalf("load %s: %v", k, err)
		}
	}
	return c
}

// authState is the part of a catalog auth.go keeps, with empty slices
// made nil: JSON's omitempty loads a role emptied by a revoke as nil, and
// the two mean the same.
type authState struct {
	Users map[string]User
	Roles map[string]Role
	Auth  AuthSettings
	// NextGeneration is compared too: a restarted replica that numbered
	// the next password from another count would accept other tokens.
	NextGeneration uint64 `json:"-"`
}

func authStateOf(c *Catalog) authState {
	s := authState{Users: map[string]User{}, Roles: map[string]Role{}, Auth: c.Auth, NextGeneration: c.nextGeneration}
	for k, u := range c.Users {
		if len(u.Roles) == 0 {
			u.Roles = nil
		}
		s.Users[k] = u
	}
	for k, r := range c.Roles {
		if len(r.Permissions) == 0 {
			r.Permissions = nil
		}
		s.Roles[k] = r
	}
	return s
}

// authJSON is a deep snapshot of users, roles and settings: a change to a
// slice shared with the snapshot's source still shows in a later one.
func authJSON(users map[string]User, roles map[string]Role, settings AuthSettings) string {
	return string(MustJSON(authState{Users: users, Roles: roles, Auth: settings}))
}

func rolesOf(t *testing.T, c *Catalog, user string) []string {
	t.Helper()
	u, ok := c.User(user)
	if !ok {
		t.Fatalf("user %s is missing", user)
	}
	return u.Roles
}

func wantRoles(t *testing.T, c *Catalog, user string, want ...string) {
	t.Helper()
	if got := rolesOf(t, c, user); !slices.Equal(got, want) {
		t.Errorf("user %s holds roles %v, want %v", user, got, want)
	}
}

func wantPermissions(t *testing.T, c *Catalog, role string, want ...Permission) {
	t.Helper()
	r, ok := c.Role(role)
	if !ok {
		t.Fatalf("role %s is missing", role)
	}
	if !slices.Equal(r.Permissions, want) {
		t.Errorf("role %s has %v, want %v", role, r.Permissions, want)
	}
}

func rp(role, keyspace string, a Access) *RolePermission {
	return &RolePermission{Role: role, Permission: Permission{Keyspace: keyspace, Access: a}}
}

// Every AuthOp, accepted and refused, on the fixture. An accepted op
// writes what a restarted node loads back into the same users, roles and
// settings; a refused one returns its mark, writes nothing and changes
// nothing, since every replica of meta must refuse it alike.
func TestAuthOps(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before []AuthOp // applied first, on top of the fixture
		op     AuthOp
		err    error // the refusal's mark, nil if the op is accepted
		writes int   // of an accepted op
		check  func(t *testing.T, c *Catalog)
	}{
		// Generations come from one counter: alice took 1, bob 2.
		{name: "add user: roles sorted and deduplicated, the next generation whatever was asked",
			op: AuthOp{AddUser: &User{Name: "carol", PasswordHash: "hash-c", Roles: []string{"writer", "reader", "writer"}, Generation: 7}}, writes: 2,
			check: func(t *testing.T, c *Catalog) {
				u, _ := c.User("carol")
				if u.PasswordHash != "hash-c" || u.Generation != 3 {
					t.Errorf("carol: %+v, want hash-c at generation 3", u)
				}
				wantRoles(t, c, "carol", "reader", "writer")
			}},
		{name: "add user without a password or roles (client certificate only)",
			op: AuthOp{AddUser: &User{Name: "svc.batch-1"}}, writes: 2,
			check: func(t *testing.T, c *Catalog) { wantRoles(t, c, "svc.batch-1") }},
		{name: "add user: upper case", op: AuthOp{AddUser: &User{Name: "Carol"}}, err: ErrInvalidArgument},
		{name: "add user: starts with a dash", op: AuthOp{AddUser: &User{Name: "-carol"}}, err: ErrInvalidArgument},
		{name: "add user: a path", op: AuthOp{AddUser: &User{Name: "../carol"}}, err: ErrInvalidArgument},
		{name: "add user: 64 bytes", op: AuthOp{AddUser: &User{Name: strings.Repeat("c", 64)}}, err: ErrInvalidArgument},
		{name: "add user: empty name", op: AuthOp{AddUser: &User{}}, err: ErrInvalidArgument},
		{name: "add user: node is the nodes' certificate name", op: AuthOp{AddUser: &User{Name: "node"}}, err: ErrInvalidArgument},
		{name: "add user: duplicate", op: AuthOp{AddUser: &User{Name: "alice"}}, err: ErrExists},
		{name: "add user: root exists from the founding", op: AuthOp{AddUser: &User{Name: RootUser}}, err: ErrExists},
		{name: "add user: unknown role", op: AuthOp{AddUser: &User{Name: "carol", Roles: []string{"reader", "auditor"}}}, err: ErrNoRole},

		{name: "delete user", op: AuthOp{DeleteUser: "alice"}, writes: 1,
			check: func(t *testing.T, c *Catalog) {
				if _, ok := c.User("alice"); ok {
					t.Error("alice is still there")
				}
			}},
		{name: "delete user, add it again: a generation the deleted one never had",
			before: []AuthOp{{DeleteUser: "alice"}},
			op:     AuthOp{AddUser: &User{Name: "alice", PasswordHash: "hash-a2"}}, writes: 2,
			check: func(t *testing.T, c *Catalog) {
				if u, _ := c.User("alice"); u.Generation != 3 {
					t.Errorf("alice again: %+v, want generation 3 (the deleted alice's tokens name 1)", u)
				}
			}},
		{name: "delete user: root", op: AuthOp{DeleteUser: RootUser}, err: ErrInvalidArgument},
		{name: "delete user: root, once its password made it a stored user",
			before: []AuthOp{{SetPassword: &User{Name: RootUser, PasswordHash: "hash-r"}}},
			op:     AuthOp{DeleteUser: RootUser}, err: ErrInvalidArgument},
		{name: "delete user: unknown", op: AuthOp{DeleteUser: "carol"}, err: ErrNoUser},

		{name: "set password: a new generation ends the old tokens",
			op: AuthOp{SetPassword: &User{Name: "alice", PasswordHash: "hash-a2"}}, writes: 2,
			check: func(t *testing.T, c *Catalog) {
				u, _ := c.User("alice")
				if u.PasswordHash != "hash-a2" || u.Generation != 3 {
					t.Errorf("alice: %+v, want hash-a2 at generation 3", u)
				}
				wantRoles(t, c, "alice", "reader")
			}},
		{name: "set password of root: stored, still holding role root",
			op: AuthOp{SetPassword: &User{Name: RootUser, PasswordHash: "hash-r"}}, writes: 2,
			check: func(t *testing.T, c *Catalog) {
				if u := c.Users[RootUser]; u.PasswordHash != "hash-r" || u.Generation != 3 {
					t.Errorf("root: %+v, want hash-r at generation 3", u)
				}
				wantRoles(t, c, RootUser, RootRole)
			}},
		{name: "set password: unknown user", op: AuthOp{SetPassword: &User{Name: "carol", PasswordHash: "h"}}, err: ErrNoUser},

		{name: "grant role", op: AuthOp{GrantRole: &UserRole{User: "alice", Role: "writer"}}, writes: 1,
			check: func(t *testing.T, c *Catalog) { wantRoles(t, c, "alice", "reader", "writer") }},
		{name: "grant role already held: nothing to write",
			op: AuthOp{GrantRole: &UserRole{User: "bob", Role: "reader"}}, writes: 0,
			check: func(t *testing.T, c *Catalog) { wantRoles(t, c, "bob", "reader", "writer") }},
		{name: "grant role to root", op: AuthOp{GrantRole: &UserRole{User: RootUser, Role: "reader"}}, writes: 1,
			check: func(t *testing.T, c *Catalog) { wantRoles(t, c, RootUser, "reader", RootRole) }},
		{name: "grant role root", op: AuthOp{GrantRole: &UserRole{User: "alice", Role: RootRole}}, writes: 1,
			check: func(t *testing.T, c *Catalog) { wantRoles(t, c, "alice", "reader", RootRole) }},
		{name: "grant role: unknown user", op: AuthOp{GrantRole: &UserRole{User: "carol", Role: "reader"}}, err: ErrNoUser},
		{name: "grant role: unknown role", op: AuthOp{GrantRole: &UserRole{User: "alice", Role: "auditor"}}, err: ErrNoRole},

		{name: "revoke role", op: AuthOp{RevokeRole: &UserRole{User: "bob", Role: "writer"}}, writes: 1,
			check: func(t *testing.T, c *Catalog) { wantRoles(t, c, "bob", "reader") }},
		{name: "revoke a user's last role", op: AuthOp{RevokeRole: &UserRole{User: "alice", Role: "reader"}}, writes: 1,
			check: func(t *testing.T, c *Catalog) { wantRoles(t, c, "alice") }},
		{name: "revoke role: root keeps role root", op: AuthOp{RevokeRole: &UserRole{User: RootUser, Role: RootRole}}, err: ErrInvalidArgument},
		{name: "revoke role: not held", op: AuthOp{RevokeRole: &UserRole{User: "alice", Role: "writer"}}, err: ErrInvalidArgument},
		{name: "revoke role: unknown user", op: AuthOp{RevokeRole: &UserRole{User: "carol", Role: "reader"}}, err: ErrNoUser},
		{name: "revoke role: unknown role", op: AuthOp{RevokeRole: &UserRole{User: "alice", Role: "auditor"}}, err: ErrNoRole},

		{name: "add role", op: AuthOp{AddRole: "auditor"}, writes: 1,
			check: func(t *testing.T, c *Catalog) { wantPermissions(t, c, "auditor") }},
		{name: "add role: bad name", op: AuthOp{AddRole: "Auditor"}, err: ErrInvalidArgument},
		{name: "add role: node", op: AuthOp{AddRole: "node"}, err: ErrInvalidArgument},
		{name: "add role: duplicate", op: AuthOp{AddRole: "reader"}, err: ErrExists},
		{name: "add role: root exists from the founding", op: AuthOp{AddRole: RootRole}, err: ErrExists},

		{name: "delete role: its users lose it", op: AuthOp{DeleteRole: "reader"}, writes: 3, // the role, alice, bob
			check: func(t *testing.T, c *Catalog) {
				if _, ok := c.Role("reader"); ok {
					t.Error("role reader is still there")
				}
				wantRoles(t, c, "alice")
				wantRoles(t, c, "bob", "writer")
			}},
		{name: "delete role root", op: AuthOp{DeleteRole: RootRole}, err: ErrInvalidArgument},
		{name: "delete role: unknown", op: AuthOp{DeleteRole: "auditor"}, err: ErrNoRole},

		{name: "grant: permissions kept in pattern order", op: AuthOp{Grant: rp("reader", "accounts", AccessWrite)}, writes: 1,
			check: func(t *testing.T, c *Catalog) {
				wantPermissions(t, c, "reader", Permission{"accounts", AccessWrite}, Permission{"orders", AccessRead})
			}},
		{name: "grant on a pattern the role has replaces it, up or down",
			before: []AuthOp{{Grant: rp("writer", "orders", AccessAdmin)}},
			op:     AuthOp{Grant: rp("writer", "team-*", AccessRead)}, writes: 1,
			check: func(t *testing.T, c *Catalog) {
				wantPermissions(t, c, "writer", Permission{"orders", AccessAdmin}, Permission{"team-*", AccessRead})
			}},
		{name: "grant on all keyspaces", op: AuthOp{Grant: rp("reader", AllKeyspaces, AccessRead)}, writes: 1,
			check: func(t *testing.T, c *Catalog) {
				wantPermissions(t, c, "reader", Permission{"*", AccessRead}, Permission{"orders", AccessRead})
			}},
		{name: "grant: role root cannot change", op: AuthOp{Grant: rp(RootRole, "orders", AccessRead)}, err: ErrInvalidArgument},
		{name: "grant: unknown role", op: AuthOp{Grant: rp("auditor", "orders", AccessRead)}, err: ErrNoRole},
		{name: "grant: unknown access", op: AuthOp{Grant: rp("reader", "orders", "superuser")}, err: ErrInvalidArgument},
		{name: "grant: no access", op: AuthOp{Grant: rp("reader", "orders", "")}, err: ErrInvalidArgument},
		{name: "grant: upper-case pattern", op: AuthOp{Grant: rp("reader", "Orders", AccessRead)}, err: ErrInvalidArgument},
		{name: "grant: '*' inside a pattern", op: AuthOp{Grant: rp("reader", "team*x", AccessRead)}, err: ErrInvalidArgument},
		{name: "grant: '**'", op: AuthOp{Grant: rp("reader", "**", AccessRead)}, err: ErrInvalidArgument},
		{name: "grant: empty pattern (the cluster is admin on '*')", op: AuthOp{Grant: rp("reader", "", AccessAdmin)}, err: ErrInvalidArgument},

		{name: "revoke: the access is not compared", op: AuthOp{Revoke: rp("writer", "team-*", AccessAdmin)}, writes: 1,
			check: func(t *testing.T, c *Catalog) { wantPermissions(t, c, "writer") }},
		{name: "revoke: a pattern the role lacks", op: AuthOp{Revoke: rp("reader", "team-*", AccessRead)}, err: ErrInvalidArgument},
		{name: "revoke: a pattern covered by another is not that pattern", op: AuthOp{Revoke: rp("writer", "team-a", AccessWrite)}, err: ErrInvalidArgument},
		{name: "revoke: role root cannot change", op: AuthOp{Revoke: rp(RootRole, AllKeyspaces, AccessAdmin)}, err: ErrInvalidArgument},
		{name: "revoke: unknown role", op: AuthOp{Revoke: rp("auditor", "orders", AccessRead)}, err: ErrNoRole},

		{name: "enable with a new key", op: AuthOp{Enable: &AuthSettings{TokenKey: tokenKey(2)}}, writes: 1,
			check: func(t *testing.T, c *Catalog) {
				if !c.Auth.Enabled || !bytes.Equal(c.Auth.TokenKey, tokenKey(2)) {
					t.Errorf("settings %+v, want enabled with key 2", c.Auth)
				}
			}},
		{name: "enable: a short key", op: AuthOp{Enable: &AuthSettings{TokenKey: tokenKey(2)[:16]}}, err: ErrInvalidArgument},
		{name: "enable: no key", op: AuthOp{Enable: &AuthSettings{}}, err: ErrInvalidArgument},
		{name: "disable drops the key", op: AuthOp{Disable: true}, writes: 1,
			check: func(t *testing.T, c *Catalog) {
				if c.Auth.Enabled || c.Auth.TokenKey != nil {
					t.Errorf("settings %+v, want off and no key", c.Auth)
				}
			}},

		{name: "an empty op", op: AuthOp{}, err: ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newAuthFixture(t)
			for _, op := range tc.before {
				if _, err := f.apply(op); err != nil {
					t.Fatalf("before: %+v: %v", op, err)
				}
			}
			before, gen := authJSON(f.c.Users, f.c.Roles, f.c.Auth), f.c.nextGeneration
			writes, err := f.apply(tc.op)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				if after := authJSON(f.c.Users, f.c.Roles, f.c.Auth); len(writes) != 0 || after != before || f.c.nextGeneration != gen {
					t.Errorf("the refused op wrote %d keys and changed the catalog:\nbefore %s\nafter  %s", len(writes), before, after)
				}
				return
			}
			if err != nil || len(writes) != tc.writes {
				t.Fatalf("err %v, %d writes; want accepted with %d", err, len(writes), tc.writes)
			}
			tc.check(t, f.c)
			if got, want := authStateOf(f.reload(t)), authStateOf(f.c); !reflect.DeepEqual(got, want) {
				t.Errorf("meta's data replayed into a new catalog:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

// The key Enable records is the catalog's own: the caller's buffer may be
// reused.
func TestEnableCopiesTheKey(t *testing.T) {
	c := NewCatalog()
	key := tokenKey(3)
	if _, _, err := c.Apply(&CatalogOp{Auth: &AuthOp{Enable: &AuthSettings{TokenKey: key}}}); err != nil {
		t.Fatal(err)
	}
	key[0] = 0
	if !bytes.Equal(c.Auth.TokenKey, tokenKey(3)) {
		t.Error("a change to the caller's buffer reached the catalog's token key")
	}
}

func TestPermissionCovers(t *testing.T) {
	for _, tc := range []struct {
		pattern, keyspace string
		want              bool
	}{
		{"orders", "orders", true},
		{"orders", "orders2", false}, // a name is not a prefix
		{"orders2", "orders", false},
		{"orders", "", false}, // a name pattern never covers the cluster
		{"team-*", "team-a", true},
		{"team-*", "team-", true},
		{"team-*", "team", false},
		{"team-*", "teams-a", false},
		{"team-*", "", false},
		{"t*", "team-a", true},
		{"*", "", true}, // the cluster itself: "*" alone covers it
		{"*", "orders", true},
		{"*", "team-a", true},
		{"*", MetaKeyspace, true},
	} {
		p := Permission{Keyspace: tc.pattern, Access: AccessRead}
		if got := p.Covers(tc.keyspace); got != tc.want {
			t.Errorf("%q covers %q: %v, want %v", tc.pattern, tc.keyspace, got, tc.want)
		}
	}
}

// The levels nest: read < write < admin. Nothing includes the empty or an
// unknown access, and an unknown access includes nothing, so a typo in a
// rule closes it instead of opening it.
func TestAccessIncludes(t *testing.T) {
	levels := []Access{"", AccessRead, AccessWrite, AccessAdmin, "superuser"}
	want := map[[2]Access]bool{
		{AccessRead, AccessRead}:   true,
		{AccessWrite, AccessRead}:  true,
		{AccessWrite, AccessWrite}: true,
		{AccessAdmin, AccessRead}:  true,
		{AccessAdmin, AccessWrite}: true,
		{AccessAdmin, AccessAdmin}: true,
	}
	for _, a := range levels {
		for _, need := range levels {
			if got := a.Includes(need); got != want[[2]Access{a, need}] {
				t.Errorf("%q includes %q: %v", a, need, got)
			}
		}
	}
}

func TestCheckPermission(t *testing.T) {
	for _, pattern := range []string{"orders", "team-*", "t*", "*", strings.Repeat("o", 63), strings.Repeat("o", 62) + "*"} {
		if err := CheckPermission(Permission{Keyspace: pattern, Access: AccessRead}); err != nil {
			t.Errorf("%q: %v", pattern, err)
		}
	}
	for _, pattern := range []string{"", "Orders", "**", "*a", "team*x", "team-*-*", "-*", strings.Repeat("o", 64), strings.Repeat("o", 63) + "*"} {
		if err := CheckPermission(Permission{Keyspace: pattern, Access: AccessRead}); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%q: %v, want invalid argument", pattern, err)
		}
	}
}

func TestAuthViewAllows(t *testing.T) {
	v := newAuthFixture(t).c.AuthView()
	for _, tc := range []struct {
		user, keyspace string
		need           Access
		want           bool
	}{
		{RootUser, "", AccessAdmin, true},
		{RootUser, "orders", AccessWrite, true},
		{"alice", "orders", AccessRead, true},
		{"alice", "orders", AccessWrite, false},
		{"alice", "orders2", AccessRead, false},
		{"alice", "", AccessRead, false},
		{"bob", "team-a", AccessWrite, true},
		{"bob", "team-a", AccessRead, true}, // write includes read
		{"bob", "team-a", AccessAdmin, false},
		{"bob", "orders", AccessRead, true},
		{"bob", "orders", AccessWrite, false},
		{"bob", "", AccessAdmin, false},
	} {
		u, ok := v.User(tc.user)
		if !ok {
			t.Fatalf("user %s is missing", tc.user)
		}
		if got := v.Allows(u, tc.keyspace, tc.need); got != tc.want {
			t.Errorf("%s %s on %q: %v, want %v", tc.user, tc.need, tc.keyspace, got, tc.want)
		}
	}
	bob, _ := v.User("bob")
	if got, want := v.Permissions(bob), []Permission{{"orders", AccessRead}, {"team-*", AccessWrite}}; !slices.Equal(got, want) {
		t.Errorf("bob's permissions %v, want %v", got, want)
	}
	// A role deleted while a user still named it (a view between the two
	// writes cannot exist, but a hand-edited user can) grants nothing.
	if got := v.Permissions(User{Name: "x", Roles: []string{"gone"}}); len(got) != 0 {
		t.Errorf("an unknown role granted %v", got)
	}
}

// root and role root are listed whether or not the catalog stores them,
// once each.
func TestAuthViewNames(t *testing.T) {
	f := newAuthFixture(t)
	check := func(when string) {
		t.Helper()
		v := f.c.AuthView()
		if got := v.UserNames(); !slices.Equal(got, []string{"alice", "bob", RootUser}) {
			t.Errorf("%s: users %v", when, got)
		}
		if got := v.RoleNames(); !slices.Equal(got, []string{"reader", RootRole, "writer"}) {
			t.Errorf("%s: roles %v", when, got)
		}
	}
	check("root implicit")
	if _, err := f.apply(AuthOp{SetPassword: &User{Name: RootUser, PasswordHash: "hash-r"}}); err != nil {
		t.Fatal(err)
	}
	check("root stored")
}

// The request path holds a view while the store's goroutine applies the
// next ops: a view must never see them, nor a half of one.
func TestAuthViewIsACopy(t *testing.T) {
	f := newAuthFixture(t)
	v := f.c.AuthView()
	before := authJSON(v.Users, v.Roles, v.Settings)
	// Each op first changes something the view holds as the fixture
	// made it (bob's roles, role reader's permissions), where a change in
	// place would show.
	for _, op := range []AuthOp{
		{DeleteRole: "writer"},
		{RevokeRole: &UserRole{User: "alice", Role: "reader"}},
		{Grant: rp("reader", "orders", AccessAdmin)},
		{Grant: rp("reader", "accounts", AccessRead)},
		{Revoke: rp("reader", "orders", "")},
		{SetPassword: &User{Name: "bob", PasswordHash: "hash-b2"}},
		{AddRole: "auditor"},
		{GrantRole: &UserRole{User: "bob", Role: "auditor"}},
		{DeleteUser: "bob"},
		{AddUser: &User{Name: "carol", Roles: []string{"reader"}}},
		{Enable: &AuthSettings{TokenKey: tokenKey(2)}},
		{Disable: true},
	} {
		if _, err := f.apply(op); err != nil {
			t.Fatalf("%+v: %v", op, err)
		}
	}
	if after := authJSON(v.Users, v.Roles, v.Settings); after != before {
		t.Errorf("a view changed with the catalog:\nbefore %s\nafter  %s", before, after)
	}
	if now := f.c.AuthView(); authJSON(now.Users, now.Roles, now.Settings) == before {
		t.Error("the ops changed nothing: the test tests nothing")
	}
}
