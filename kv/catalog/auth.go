package catalog

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/quorumkv/quorumkv/certs"
)

// Users, roles and whether the cluster checks them live in the catalog,
// so every node agrees on them at the same index of meta's log, as etcd
// keeps its auth store in its Raft log. The catalog holds only password
// hashes (kv/auth hashes on the node that takes the request) and the key
// that signs tokens; no API shows either.

// Access is what a permission allows on a keyspace. Each level includes
// the ones below it: write can read, admin can write.
type Access string

const (
	// AccessRead: get and scan; describe the keyspace.
	AccessRead Access = "read"
	// AccessWrite: put, delete and compare-and-swap, and read.
	AccessWrite Access = "write"
	// AccessAdmin: create and drop the keyspace, and write. Admin on "*"
	// is the cluster's admin: users, roles, auth, nodes, gossip keys.
	AccessAdmin Access = "admin"
)

func (a Access) rank() int {
	switch a {
	case AccessRead:
		return 1
	case AccessWrite:
		return 2
	case AccessAdmin:
		return 3
	}
	return 0
}

// Includes reports whether a allows what need allows.
func (a Access) Includes(need Access) bool { return a.rank() >= need.rank() && need.rank() > 0 }

// ParseAccess reads read, write or admin.
func ParseAccess(s string) (Access, error) {
	if a := Access(s); a.rank() > 0 {
		return a, nil
	}
	return "", fmt.Errorf("%w: access %q: want read, write or admin", ErrInvalidArgument, s)
}

// AllKeyspaces is the permission pattern that covers every keyspace and,
// with admin, the cluster itself.
const AllKeyspaces = "*"

// Permission grants Access on the keyspaces Keyspace names: one name
// ("orders"), the names with a prefix ("team-a-*"), or every keyspace
// ("*").
type Permission struct {
	Keyspace string `json:"keyspace"`
	Access   Access `json:"access"`
}

// Covers reports whether p's pattern names keyspace. The cluster itself
// (keyspace "") is covered by "*" alone.
func (p Permission) Covers(keyspace string) bool {
	if prefix, ok := strings.CutSuffix(p.Keyspace, "*"); ok {
		return keyspace != "" && strings.HasPrefix(keyspace, prefix) || p.Keyspace == AllKeyspaces
	}
	return p.Keyspace == keyspace && keyspace != ""
}

func (p Permission) String() string { return fmt.Sprintf("%s on %s", p.Access, p.Keyspace) }

// CheckPermission checks a permission's pattern and access.
func CheckPermission(p Permission) error {
	if _, err := ParseAccess(string(p.Access)); err != nil {
		return err
	}
	name, prefix := strings.CutSuffix(p.Keyspace, "*")
	switch {
	case p.Keyspace == AllKeyspaces:
		return nil
	case prefix && keyspacePrefix.MatchString(name):
		return nil
	case !prefix && CheckKeyspaceName(name) == nil:
		return nil
	}
	return fmt.Errorf("%w: permission pattern %q: want a keyspace name, a name prefix ending in '*' (team-a-*), or '*' for all", ErrInvalidArgument, p.Keyspace)
}

var keyspacePrefix = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,61}$`)

// Role is a named set of permissions.
type Role struct {
	Name        string       `json:"name"`
	Permissions []Permission `json:"permissions,omitempty"`
}

// User is a user of the cluster. A user logs in with its password (if it
// has one) or with a client certificate whose Common Name is its name.
type User struct {
	Name string `json:"name"`
	// PasswordHash is the password's hash in PHC form (kv/auth), "" for a
	// user that logs in with a client certificate only.
	PasswordHash string   `json:"password_hash,omitempty"`
	Roles        []string `json:"roles,omitempty"`
	// Generation changes whenever the password does: a token names the
	// generation it was issued for, so a new password ends the tokens
	// issued under the old one. One counter numbers the generations of
	// all users (Catalog.nextGeneration), so a user deleted and added
	// again under its name never takes up its predecessor's generation,
	// nor the tokens issued for it.
	Generation uint64 `json:"generation,omitempty"`
}

// HasRole reports whether u holds role.
func (u User) HasRole(role string) bool { return slices.Contains(u.Roles, role) }

// AuthSettings says whether the cluster authenticates its clients, and
// holds the key that signs its tokens (32 random bytes, chosen by the
// node that enabled auth and never shown).
type AuthSettings struct {
	Enabled  bool   `json:"enabled"`
	TokenKey []byte `json:"token_key,omitempty"`
}

// RootUser and RootRole exist in every cluster from its founding: root
// holds role root, which is admin on "*". Neither can be deleted, and
// role root cannot be changed.
const (
	RootUser = "root"
	RootRole = "root"
)

// rootRole is role root as every catalog has it.
var rootRole = Role{Name: RootRole, Permissions: []Permission{{Keyspace: AllKeyspaces, Access: AccessAdmin}}}

// TokenKeyBytes is the size of AuthSettings.TokenKey.
const TokenKeyBytes = 32

// CheckUserName checks a user or role name: the form of the Common Name
// of client certificates (certs.UserName), and never the nodes' own
// (certs.RoleNode).
func CheckUserName(what, name string) error {
	switch {
	case !certs.UserName.MatchString(name):
		return fmt.Errorf("%w: %s name %q: want %s", ErrInvalidArgument, what, name, certs.UserName)
	case name == certs.RoleNode:
		return fmt.Errorf("%w: %s name %q is the nodes' own (their certificates' Common Name)", ErrInvalidArgument, what, name)
	}
	return nil
}

// ErrNoUser and ErrNoRole mark requests about users or roles the catalog
// does not have; the API maps them to NotFound.
var (
	ErrNoUser = errors.New("no such user")
	ErrNoRole = errors.New("no such role")
)

// AuthOp is a change to users, roles or auth settings; exactly one field
// is set. Passwords arrive hashed.
type AuthOp struct {
	AddUser     *User           `json:"add_user,omitempty"`
	DeleteUser  string          `json:"delete_user,omitempty"`
	SetPassword *User           `json:"set_password,omitempty"`
	GrantRole   *UserRole       `json:"grant_role,omitempty"`
	RevokeRole  *UserRole       `json:"revoke_role,omitempty"`
	AddRole     string          `json:"add_role,omitempty"`
	DeleteRole  string          `json:"delete_role,omitempty"`
	Grant       *RolePermission `json:"grant,omitempty"`
	// Revoke takes from a role its permission on Permission.Keyspace
	// (the access is not compared).
	Revoke *RolePermission `json:"revoke,omitempty"`
	// Enable turns authentication on with a new token key, ending every
	// token signed with an earlier one.
	Enable *AuthSettings `json:"enable,omitempty"`
	// Disable turns authentication off.
	Disable bool `json:"disable,omitempty"`
}

// UserRole names role Role of user User.
type UserRole struct {
	User string `json:"user"`
	Role string `json:"role"`
}

// RolePermission is permission Permission of role Role.
type RolePermission struct {
	Role       string     `json:"role"`
	Permission Permission `json:"permission"`
}

// Catalog keys of auth.
const (
	catalogUserPrefix     = "user/"
	catalogRolePrefix     = "role/"
	catalogAuth           = "auth"
	catalogNextGeneration = "next-generation"
)

// User returns user name; root always exists.
func (c *Catalog) User(name string) (User, bool) { return lookupUser(c.Users, name) }

// Role returns role name; root always exists.
func (c *Catalog) Role(name string) (Role, bool) { return lookupRole(c.Roles, name) }

func lookupUser(users map[string]User, name string) (User, bool) {
	if u, ok := users[name]; ok {
		return u, true
	}
	if name == RootUser {
		return User{Name: RootUser, Roles: []string{RootRole}}, true
	}
	return User{}, false
}

func lookupRole(roles map[string]Role, name string) (Role, bool) {
	if name == RootRole {
		return rootRole, true
	}
	r, ok := roles[name]
	return r, ok
}

func (c *Catalog) applyAuth(op *AuthOp) ([]catalogWrite, error) {
	switch {
	case op.AddUser != nil:
		return c.addUser(*op.AddUser)
	case op.DeleteUser != "":
		return c.deleteUser(op.DeleteUser)
	case op.SetPassword != nil:
		u, ok := c.User(op.SetPassword.Name)
		if !ok {
			return nil, fmt.Errorf("%w: %s", ErrNoUser, op.SetPassword.Name)
		}
		u.PasswordHash = op.SetPassword.PasswordHash
		return c.putUserGeneration(u), nil
	case op.GrantRole != nil, op.RevokeRole != nil:
		return c.userRole(op)
	case op.AddRole != "":
		if err := CheckUserName("role", op.AddRole); err != nil {
			return nil, err
		}
		if _, ok := c.Role(op.AddRole); ok {
			return nil, fmt.Errorf("%w: role %s", ErrExists, op.AddRole)
		}
		return c.putRole(Role{Name: op.AddRole}), nil
	case op.DeleteRole != "":
		return c.deleteRole(op.DeleteRole)
	case op.Grant != nil, op.Revoke != nil:
		return c.rolePermission(op)
	case op.Enable != nil:
		if len(op.Enable.TokenKey) != TokenKeyBytes {
			return nil, fmt.Errorf("%w: a token key is %d bytes, not %d", ErrInvalidArgument, TokenKeyBytes, len(op.Enable.TokenKey))
		}
		c.Auth = AuthSettings{Enabled: true, TokenKey: slices.Clone(op.Enable.TokenKey)}
		return []catalogWrite{{[]byte(catalogAuth), MustJSON(c.Auth)}}, nil
	case op.Disable:
		c.Auth = AuthSettings{}
		return []catalogWrite{{[]byte(catalogAuth), MustJSON(c.Auth)}}, nil
	}
	return nil, fmt.Errorf("%w: empty auth operation", ErrInvalidArgument)
}

func (c *Catalog) addUser(u User) ([]catalogWrite, error) {
	if err := CheckUserName("user", u.Name); err != nil {
		return nil, err
	}
	if _, ok := c.User(u.Name); ok {
		return nil, fmt.Errorf("%w: user %s", ErrExists, u.Name)
	}
	for _, r := range u.Roles {
		if _, ok := c.Role(r); !ok {
			return nil, fmt.Errorf("%w: %s (user %s cannot be given it; kvctl role add makes it)", ErrNoRole, r, u.Name)
		}
	}
	u.Roles = slices.Compact(slices.Sorted(slices.Values(u.Roles)))
	return c.putUserGeneration(u), nil
}

func (c *Catalog) deleteUser(name string) ([]catalogWrite, error) {
	if name == RootUser {
		return nil, fmt.Errorf("%w: user root cannot be deleted (kvctl auth disable, or a new password, are the ways to change it)", ErrInvalidArgument)
	}
	if _, ok := c.Users[name]; !ok {
		return nil, fmt.Errorf("%w: %s", ErrNoUser, name)
	}
	delete(c.Users, name)
	return []catalogWrite{{Key: []byte(catalogUserPrefix + name)}}, nil
}

func (c *Catalog) userRole(op *AuthOp) ([]catalogWrite, error) {
	ur, grant := op.GrantRole, true
	if ur == nil {
		ur, grant = op.RevokeRole, false
	}
	u, ok := c.User(ur.User)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNoUser, ur.User)
	}
	if _, ok := c.Role(ur.Role); !ok {
		return nil, fmt.Errorf("%w: %s", ErrNoRole, ur.Role)
	}
	switch {
	case grant && u.HasRole(ur.Role):
		return nil, nil
	case grant:
		u.Roles = slices.Sorted(slices.Values(append(slices.Clone(u.Roles), ur.Role)))
	case ur.User == RootUser && ur.Role == RootRole:
		return nil, fmt.Errorf("%w: user root always holds role root", ErrInvalidArgument)
	case !u.HasRole(ur.Role):
		return nil, fmt.Errorf("%w: user %s does not hold role %s", ErrInvalidArgument, u.Name, ur.Role)
	default:
		u.Roles = slices.DeleteFunc(slices.Clone(u.Roles), func(r string) bool { return r == ur.Role })
	}
	return c.putUser(u), nil
}

func (c *Catalog) deleteRole(name string) ([]catalogWrite, error) {
	if name == RootRole {
		return nil, fmt.Errorf("%w: role root cannot be deleted", ErrInvalidArgument)
	}
	if _, ok := c.Roles[name]; !ok {
		return nil, fmt.Errorf("%w: %s", ErrNoRole, name)
	}
	delete(c.Roles, name)
	writes := []catalogWrite{{Key: []byte(catalogRolePrefix + name)}}
	for _, uname := range slices.Sorted(maps.Keys(c.Users)) { // the same writes, in the same order, on every replica
		if u := c.Users[uname]; u.HasRole(name) {
			u.Roles = slices.DeleteFunc(slices.Clone(u.Roles), func(r string) bool { return r == name })
			writes = append(writes, c.putUser(u)...)
		}
	}
	return writes, nil
}

func (c *Catalog) rolePermission(op *AuthOp) ([]catalogWrite, error) {
	rp, grant := op.Grant, true
	if rp == nil {
		rp, grant = op.Revoke, false
	}
	if rp.Role == RootRole {
		return nil, fmt.Errorf("%w: role root is admin on every keyspace and cannot be changed", ErrInvalidArgument)
	}
	r, ok := c.Roles[rp.Role]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNoRole, rp.Role)
	}
	p := rp.Permission
	i := slices.IndexFunc(r.Permissions, func(q Permission) bool { return q.Keyspace == p.Keyspace })
	perms := slices.Clone(r.Permissions)
	switch {
	case grant:
		if err := CheckPermission(p); err != nil {
			return nil, err
		}
		if i >= 0 {
			perms[i] = p // a grant on the same pattern replaces the old one
		} else {
			perms = append(perms, p)
		}
		slices.SortFunc(perms, func(a, b Permission) int { return strings.Compare(a.Keyspace, b.Keyspace) })
	case i < 0:
		return nil, fmt.Errorf("%w: role %s has no permission on %q", ErrInvalidArgument, r.Name, p.Keyspace)
	default:
		perms = slices.Delete(perms, i, i+1)
	}
	r.Permissions = perms
	return c.putRole(r), nil
}

func (c *Catalog) putUser(u User) []catalogWrite {
	c.Users[u.Name] = u
	return []catalogWrite{{[]byte(catalogUserPrefix + u.Name), MustJSON(u)}}
}

// putUserGeneration puts u with a generation no user had before.
func (c *Catalog) putUserGeneration(u User) []catalogWrite {
	u.Generation = c.nextGeneration
	c.nextGeneration++
	return append(c.putUser(u), catalogWrite{[]byte(catalogNextGeneration), MustJSON(c.nextGeneration)})
}

func (c *Catalog) putRole(r Role) []catalogWrite {
	c.Roles[r.Name] = r
	return []catalogWrite{{[]byte(catalogRolePrefix + r.Name), MustJSON(r)}}
}

// AuthView is a read-only copy of the catalog's users, roles and auth
// settings, for the node's request path. Its maps and slices are never
// changed: the catalog replaces what it changes.
type AuthView struct {
	Settings AuthSettings
	Users    map[string]User
	Roles    map[string]Role
}

// AuthView returns the catalog's auth state; see AuthView.
func (c *Catalog) AuthView() *AuthView {
	users := make(map[string]User, len(c.Users))
	for k, v := range c.Users {
		users[k] = v
	}
	roles := make(map[string]Role, len(c.Roles))
	for k, v := range c.Roles {
		roles[k] = v
	}
	return &AuthView{Settings: c.Auth, Users: users, Roles: roles}
}

// User returns user name; root always exists.
func (v *AuthView) User(name string) (User, bool) { return lookupUser(v.Users, name) }

// Role returns role name; root always exists.
func (v *AuthView) Role(name string) (Role, bool) { return lookupRole(v.Roles, name) }

// Permissions returns the permissions user's roles grant.
func (v *AuthView) Permissions(user User) []Permission {
	var out []Permission
	for _, name := range user.Roles {
		if r, ok := v.Role(name); ok {
			out = append(out, r.Permissions...)
		}
	}
	return out
}

// Allows reports whether user may have access need on keyspace ("" for
// the cluster itself: admin on "*" alone allows it).
func (v *AuthView) Allows(user User, keyspace string, need Access) bool {
	for _, p := range v.Permissions(user) {
		if p.Covers(keyspace) && p.Access.Includes(need) {
			return true
		}
	}
	return false
}

// UserNames returns the users' names in order, root among them.
func (v *AuthView) UserNames() []string {
	names := make([]string, 0, len(v.Users)+1)
	for name := range v.Users {
		names = append(names, name)
	}
	if _, ok := v.Users[RootUser]; !ok {
		names = append(names, RootUser)
	}
	slices.Sort(names)
	return names
}

// RoleNames returns the roles' names in order, root among them.
func (v *AuthView) RoleNames() []string {
	names := []string{RootRole}
	for name := range v.Roles {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}
