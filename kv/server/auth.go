package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"connectrpc.com/connect"

	v1 "github.com/quorumkv/quorumkv/api/quorumkv/v1"
	"github.com/quorumkv/quorumkv/api/quorumkv/v1/quorumkvv1connect"
	"github.com/quorumkv/quorumkv/certs"
	"github.com/quorumkv/quorumkv/kv"
	"github.com/quorumkv/quorumkv/kv/auth"
	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/transport"
)

// Every KV, Admin and Auth call passes authInterceptor, and every REST
// route and the status page call authorize, before they touch anything:
// a refused request writes nothing. The rule of each call is in
// required; a call it does not know needs admin on the cluster, so a new
// call is closed until it is given a rule.

// AuthCanary plants a bug in the checks of callers (ServerInfo.Canary).
type AuthCanary struct {
	// ReadAllowsWrite asks only read access of a write, as a rule table
	// with a slip would: a user who may read a keyspace writes it.
	ReadAllowsWrite bool
	// ForwardedSkipsCheck lets a request marked forwarded by another node
	// (kv.ForwardedHeader) through unchecked, "since the node that
	// forwarded it checked it": any client can set the header.
	ForwardedSkipsCheck bool
}

// tlsKey carries a request's TLS state to the Connect interceptor, which
// sees headers but not the connection.
type tlsKey struct{}

func tlsOf(ctx context.Context) *tls.ConnectionState {
	cs, _ := ctx.Value(tlsKey{}).(*tls.ConnectionState)
	return cs
}

// callerKey carries the caller authInterceptor found to the handler.
type callerKey struct{}

func callerOf(ctx context.Context) auth.Caller {
	c, _ := ctx.Value(callerKey{}).(auth.Caller)
	return c
}

// rule is what a call needs: access on a keyspace ("" for the cluster),
// or nothing (open).
type rule struct {
	keyspace string
	need     catalog.Access
	open     bool
}

var clusterAdmin = rule{need: catalog.AccessAdmin}

// required returns the rule of a call with request message msg.
func required(msg any) rule {
	switch m := msg.(type) {
	case *v1.PutRequest:
		return rule{keyspace: m.Keyspace, need: catalog.AccessWrite}
	case *v1.DeleteRequest:
		return rule{keyspace: m.Keyspace, need: catalog.AccessWrite}
	case *v1.CompareAndSwapRequest:
		return rule{keyspace: m.Keyspace, need: catalog.AccessWrite}
	case *v1.GetRequest:
		return rule{keyspace: m.Keyspace, need: catalog.AccessRead}
	case *v1.ScanRequest:
		return rule{keyspace: m.Keyspace, need: catalog.AccessRead}
	case *v1.CreateKeyspaceRequest:
		return rule{keyspace: m.GetKeyspace().GetName(), need: catalog.AccessAdmin}
	case *v1.DropKeyspaceRequest:
		return rule{keyspace: m.Name, need: catalog.AccessAdmin}
	case *v1.DescribeKeyspaceRequest:
		return rule{keyspace: m.Name, need: catalog.AccessRead}
	case *v1.ListRangesRequest:
		if m.Keyspace != "" {
			return rule{keyspace: m.Keyspace, need: catalog.AccessRead}
		}
		return rule{need: auth.AnyUser}
	case *v1.ListKeyspacesRequest, *v1.ListMembersRequest, *v1.StatusRequest:
		return rule{need: auth.AnyUser}
	case *v1.AuthenticateRequest, *v1.WhoAmIRequest:
		return rule{open: true}
	case *v1.UserChangePasswordRequest:
		return rule{need: auth.AnyUser} // a user's own password; others' are checked by the handler
	}
	return clusterAdmin
}

// authInterceptor checks every call against its rule (required) and
// passes the caller to the handler, and its credentials to the requests
// the handler forwards to other nodes.
func (a *apiServer) authInterceptor() connect.Interceptor {
	return connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			authorization := req.Header().Get("Authorization")
			r := required(req.Any())
			if c := a.info.Canary; c.ReadAllowsWrite && r.need == catalog.AccessWrite {
				r.need = catalog.AccessRead
			}
			if a.info.Canary.ForwardedSkipsCheck && req.Header().Get(kv.ForwardedHeader) != "" {
				r.open = true
			}
			if !r.open {
				caller, err := a.authorize(ctx, authorization, tlsOf(ctx), r.keyspace, r.need)
				if err != nil {
					return nil, transport.ToConnect(err)
				}
				ctx = context.WithValue(ctx, callerKey{}, caller)
			}
			if authorization != "" {
				ctx = transport.WithAuthorization(ctx, authorization)
			}
			return next(ctx, req)
		}
	})
}

// authorize finds the caller of a request and checks that it may have
// access need on keyspace. With auth off it does nothing. A refusal this
// node's catalog may be behind on (a user added, a password changed, a
// role granted a moment ago through another node) is decided again once
// the catalog has caught up.
func (a *apiServer) authorize(ctx context.Context, authorization string, cs *tls.ConnectionState, keyspace string, need catalog.Access) (auth.Caller, error) {
	if !a.node.Store().Catalog().Auth.Settings.Enabled {
		return auth.Caller{}, nil
	}
	arrived := time.Now()
	caller, err := a.identifyAndAuthorize(authorization, cs, keyspace, need)
	if errors.Is(err, auth.ErrStale) || errors.Is(err, catalog.ErrPermissionDenied) {
		if a.catchUps.after(ctx, arrived, func(ctx context.Context) error {
			return a.node.CatchUpCatalog(ctx, "the caller's user and roles")
		}) == nil {
			caller, err = a.identifyAndAuthorize(authorization, cs, keyspace, need)
		}
	}
	if a.metrics != nil {
		switch {
		case errors.Is(err, catalog.ErrUnauthenticated):
			a.metrics.AuthRefusals.WithLabelValues("unauthenticated").Inc()
		case errors.Is(err, catalog.ErrPermissionDenied):
			a.metrics.AuthRefusals.WithLabelValues("permission_denied").Inc()
		}
	}
	return caller, err
}

func (a *apiServer) identifyAndAuthorize(authorization string, cs *tls.ConnectionState, keyspace string, need catalog.Access) (auth.Caller, error) {
	view := a.node.Store().Catalog().Auth
	caller, err := auth.Identify(view, authorization, cs, time.Now())
	if err != nil {
		return auth.Caller{}, err
	}
	return caller, auth.Authorize(view, caller, keyspace, need)
}

// restAuthorize is authorize for a REST request; it returns the context
// the request's handler runs in, which forwards its credentials.
func (a *apiServer) restAuthorize(ctx context.Context, r *http.Request, keyspace string, need catalog.Access) (context.Context, error) {
	authorization := r.Header.Get("Authorization")
	if _, err := a.authorize(ctx, authorization, r.TLS, keyspace, need); err != nil {
		return ctx, err
	}
	if authorization != "" {
		ctx = transport.WithAuthorization(ctx, authorization)
	}
	return ctx, nil
}

var _ quorumkvv1connect.AuthHandler = (*apiServer)(nil)

// errAuthOff answers Authenticate while authentication is off.
var errAuthOff = errors.New("authentication is off (kvctl auth enable turns it on): requests need no token")

func (a *apiServer) Authenticate(ctx context.Context, req *connect.Request[v1.AuthenticateRequest]) (*connect.Response[v1.AuthenticateResponse], error) {
	view := a.node.Store().Catalog().Auth
	if !view.Settings.Enabled {
		return nil, connect.NewError(connect.CodeFailedPrecondition, errAuthOff)
	}
	u, ok := view.User(req.Msg.User)
	if !ok && a.node.CatchUpCatalog(ctx, "user "+req.Msg.User) == nil {
		view = a.node.Store().Catalog().Auth
		u, ok = view.User(req.Msg.User)
	}
	if ok && u.PasswordHash == "" {
		return nil, transport.ToConnect(fmt.Errorf("%w: user %s has no password: it logs in with its client certificate (kvd cert create-client %s)",
			catalog.ErrUnauthenticated, u.Name, u.Name))
	}
	good := false
	if ok {
		var err error
		if good, err = auth.VerifyPassword(ctx, u.PasswordHash, req.Msg.Password); err != nil {
			return nil, transport.ToConnect(err)
		}
	}
	if !good {
		// The same answer for an unknown user and a wrong password: a
		// stranger learns nothing about which users exist.
		return nil, transport.ToConnect(fmt.Errorf("%w: wrong user name or password", catalog.ErrUnauthenticated))
	}
	token, exp := auth.Mint(view.Settings.TokenKey, u, time.Now(), a.tokenTTL())
	return connect.NewResponse(&v1.AuthenticateResponse{Token: token, ExpiresUnixMs: exp.UnixMilli()}), nil
}

func (a *apiServer) tokenTTL() time.Duration {
	if a.info.TokenTTL > 0 {
		return a.info.TokenTTL
	}
	return auth.DefaultTokenTTL
}

func (a *apiServer) WhoAmI(ctx context.Context, req *connect.Request[v1.WhoAmIRequest]) (*connect.Response[v1.WhoAmIResponse], error) {
	view := a.node.Store().Catalog().Auth
	caller, err := auth.Identify(view, req.Header().Get("Authorization"), tlsOf(ctx), time.Now())
	if err != nil && view.Settings.Enabled {
		return nil, transport.ToConnect(err)
	}
	resp := &v1.WhoAmIResponse{Enabled: view.Settings.Enabled, User: caller.User, Method: caller.Method}
	if u, ok := view.User(caller.User); ok {
		resp.Roles = u.Roles
		resp.Permissions = permissionsToProto(view.Permissions(u))
	}
	return connect.NewResponse(resp), nil
}

func permissionsToProto(perms []catalog.Permission) []*v1.Permission {
	var out []*v1.Permission
	for _, p := range perms {
		out = append(out, &v1.Permission{Keyspace: p.Keyspace, Access: accessToProto[p.Access]})
	}
	return out
}

var accessToProto = map[catalog.Access]v1.Access{
	catalog.AccessRead: v1.Access_ACCESS_READ, catalog.AccessWrite: v1.Access_ACCESS_WRITE, catalog.AccessAdmin: v1.Access_ACCESS_ADMIN,
}

// changeAuth proposes op through meta's leader: here if this node leads
// meta, else by forwarding req to the leader, which builds op again.
func changeAuth[Req, Resp any](ctx context.Context, a *apiServer, req *connect.Request[Req],
	rpc func(quorumkvv1connect.AuthClient, context.Context, *connect.Request[Req]) (*connect.Response[Resp], error),
	op func() (catalog.AuthOp, error)) (*connect.Response[Resp], error) {
	return atMetaLeaderVia(ctx, a, req, a.node.Peers().AuthClient, rpc, func() (*Resp, error) {
		o, err := op()
		if err != nil {
			return nil, err
		}
		return new(Resp), a.node.ChangeAuth(ctx, o)
	})
}

func (a *apiServer) AuthEnable(ctx context.Context, req *connect.Request[v1.AuthEnableRequest]) (*connect.Response[v1.AuthEnableResponse], error) {
	if a.node.Store().Catalog().Auth.Settings.Enabled {
		return connect.NewResponse(&v1.AuthEnableResponse{}), nil // a new token key would log every client out
	}
	return changeAuth(ctx, a, req, quorumkvv1connect.AuthClient.AuthEnable, func() (catalog.AuthOp, error) {
		view := a.node.Store().Catalog().Auth
		root, _ := view.User(catalog.RootUser)
		// With auth off no caller was identified: a client certificate
		// says who it is all the same. A node forwarding the request had
		// it checked where it entered.
		cs := tlsOf(ctx)
		if root.PasswordHash == "" && certs.User(cs) != catalog.RootUser && !certs.PeerRole(cs) {
			return catalog.AuthOp{}, connect.NewError(connect.CodeFailedPrecondition, errors.New(
				"user root could not log in with authentication on: give it a password first (kvctl user passwd root), "+
					"or enable auth as root with its client certificate (kvd cert create-client root; kvctl --certs-dir DIR --user root auth enable)"))
		}
		key, err := auth.NewTokenKey()
		return catalog.AuthOp{Enable: &catalog.AuthSettings{TokenKey: key}}, err
	})
}

func (a *apiServer) AuthDisable(ctx context.Context, req *connect.Request[v1.AuthDisableRequest]) (*connect.Response[v1.AuthDisableResponse], error) {
	return changeAuth(ctx, a, req, quorumkvv1connect.AuthClient.AuthDisable, func() (catalog.AuthOp, error) {
		return catalog.AuthOp{Disable: true}, nil
	})
}

// hashPassword hashes a password given in a request ("" stays "": a user
// without one).
func hashPassword(ctx context.Context, password string) (string, error) {
	if password == "" {
		return "", nil
	}
	return auth.HashPassword(ctx, password, auth.DefaultKDF)
}

func (a *apiServer) UserAdd(ctx context.Context, req *connect.Request[v1.UserAddRequest]) (*connect.Response[v1.UserAddResponse], error) {
	return changeAuth(ctx, a, req, quorumkvv1connect.AuthClient.UserAdd, func() (catalog.AuthOp, error) {
		if err := catalog.CheckUserName("user", req.Msg.Name); err != nil {
			return catalog.AuthOp{}, err
		}
		hash, err := hashPassword(ctx, req.Msg.Password)
		return catalog.AuthOp{AddUser: &catalog.User{Name: req.Msg.Name, PasswordHash: hash, Roles: req.Msg.Roles}}, err
	})
}

func (a *apiServer) UserList(ctx context.Context, _ *connect.Request[v1.UserListRequest]) (*connect.Response[v1.UserListResponse], error) {
	view := a.node.Store().Catalog().Auth
	resp := &v1.UserListResponse{}
	for _, name := range view.UserNames() {
		u, _ := view.User(name)
		resp.Users = append(resp.Users, &v1.User{Name: u.Name, Roles: u.Roles, HasPassword: u.PasswordHash != ""})
	}
	return connect.NewResponse(resp), nil
}

func (a *apiServer) UserDelete(ctx context.Context, req *connect.Request[v1.UserDeleteRequest]) (*connect.Response[v1.UserDeleteResponse], error) {
	return changeAuth(ctx, a, req, quorumkvv1connect.AuthClient.UserDelete, func() (catalog.AuthOp, error) {
		return catalog.AuthOp{DeleteUser: req.Msg.Name}, nil
	})
}

func (a *apiServer) UserChangePassword(ctx context.Context, req *connect.Request[v1.UserChangePasswordRequest]) (*connect.Response[v1.UserChangePasswordResponse], error) {
	if caller := callerOf(ctx); caller.User != req.Msg.Name {
		// Another user's password: the cluster's admin only.
		if err := auth.Authorize(a.node.Store().Catalog().Auth, caller, "", catalog.AccessAdmin); err != nil {
			return nil, transport.ToConnect(err)
		}
	}
	return changeAuth(ctx, a, req, quorumkvv1connect.AuthClient.UserChangePassword, func() (catalog.AuthOp, error) {
		hash, err := hashPassword(ctx, req.Msg.Password)
		return catalog.AuthOp{SetPassword: &catalog.User{Name: req.Msg.Name, PasswordHash: hash}}, err
	})
}

func (a *apiServer) UserGrantRole(ctx context.Context, req *connect.Request[v1.UserGrantRoleRequest]) (*connect.Response[v1.UserGrantRoleResponse], error) {
	return changeAuth(ctx, a, req, quorumkvv1connect.AuthClient.UserGrantRole, func() (catalog.AuthOp, error) {
		return catalog.AuthOp{GrantRole: &catalog.UserRole{User: req.Msg.User, Role: req.Msg.Role}}, nil
	})
}

func (a *apiServer) UserRevokeRole(ctx context.Context, req *connect.Request[v1.UserRevokeRoleRequest]) (*connect.Response[v1.UserRevokeRoleResponse], error) {
	return changeAuth(ctx, a, req, quorumkvv1connect.AuthClient.UserRevokeRole, func() (catalog.AuthOp, error) {
		return catalog.AuthOp{RevokeRole: &catalog.UserRole{User: req.Msg.User, Role: req.Msg.Role}}, nil
	})
}

func (a *apiServer) RoleAdd(ctx context.Context, req *connect.Request[v1.RoleAddRequest]) (*connect.Response[v1.RoleAddResponse], error) {
	return changeAuth(ctx, a, req, quorumkvv1connect.AuthClient.RoleAdd, func() (catalog.AuthOp, error) {
		return catalog.AuthOp{AddRole: req.Msg.Name}, nil
	})
}

func (a *apiServer) RoleList(ctx context.Context, _ *connect.Request[v1.RoleListRequest]) (*connect.Response[v1.RoleListResponse], error) {
	view := a.node.Store().Catalog().Auth
	resp := &v1.RoleListResponse{}
	for _, name := range view.RoleNames() {
		r, _ := view.Role(name)
		resp.Roles = append(resp.Roles, &v1.Role{Name: r.Name, Permissions: permissionsToProto(r.Permissions)})
	}
	return connect.NewResponse(resp), nil
}

func (a *apiServer) RoleDelete(ctx context.Context, req *connect.Request[v1.RoleDeleteRequest]) (*connect.Response[v1.RoleDeleteResponse], error) {
	return changeAuth(ctx, a, req, quorumkvv1connect.AuthClient.RoleDelete, func() (catalog.AuthOp, error) {
		return catalog.AuthOp{DeleteRole: req.Msg.Name}, nil
	})
}

func (a *apiServer) RoleGrantPermission(ctx context.Context, req *connect.Request[v1.RoleGrantPermissionRequest]) (*connect.Response[v1.RoleGrantPermissionResponse], error) {
	return changeAuth(ctx, a, req, quorumkvv1connect.AuthClient.RoleGrantPermission, func() (catalog.AuthOp, error) {
		p := req.Msg.GetPermission()
		var access catalog.Access
		for acc, pa := range accessToProto {
			if pa == p.GetAccess() {
				access = acc
			}
		}
		perm := catalog.Permission{Keyspace: p.GetKeyspace(), Access: access}
		if access == "" {
			return catalog.AuthOp{}, fmt.Errorf("%w: permission on %q: the access is missing: want read, write or admin", catalog.ErrInvalidArgument, perm.Keyspace)
		}
		return catalog.AuthOp{Grant: &catalog.RolePermission{Role: req.Msg.Role, Permission: perm}}, catalog.CheckPermission(perm)
	})
}

func (a *apiServer) RoleRevokePermission(ctx context.Context, req *connect.Request[v1.RoleRevokePermissionRequest]) (*connect.Response[v1.RoleRevokePermissionResponse], error) {
	return changeAuth(ctx, a, req, quorumkvv1connect.AuthClient.RoleRevokePermission, func() (catalog.AuthOp, error) {
		return catalog.AuthOp{Revoke: &catalog.RolePermission{Role: req.Msg.Role, Permission: catalog.Permission{Keyspace: req.Msg.Keyspace}}}, nil
	})
}

// catchUps shares catalog catch-ups among refused requests: a request
// waits for one that started after it arrived (which makes its catalog
// hold every change committed before the request), joining the next one
// if the one running started earlier. However many refusals arrive,
// forged tokens among them, at most one catch-up runs at a time.
type catchUps struct {
	mu      sync.Mutex
	running *catchUp // nil when none runs
	next    *catchUp // starts when running ends; nil if none is wanted
}

type catchUp struct {
	started time.Time
	done    chan struct{}
	err     error
}

// after returns the result of a catch-up (run) that started no earlier
// than arrived.
func (c *catchUps) after(ctx context.Context, arrived time.Time, run func(context.Context) error) error {
	c.mu.Lock()
	var wait *catchUp
	switch {
	case c.running == nil:
		wait = c.start(run)
	case !c.running.started.Before(arrived):
		wait = c.running
	default:
		if c.next == nil {
			c.next = &catchUp{done: make(chan struct{})}
		}
		wait = c.next
	}
	c.mu.Unlock()
	select {
	case <-wait.done:
		return wait.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// start runs a catch-up, and the next one queued behind it; c.mu is held.
func (c *catchUps) start(run func(context.Context) error) *catchUp {
	cu := c.next
	if cu == nil {
		cu = &catchUp{done: make(chan struct{})}
	}
	c.next, c.running = nil, cu
	cu.started = time.Now()
	go func() {
		// Not the request's context: others wait on it too.
		ctx, cancel := context.WithTimeout(context.Background(), catchUpTimeout)
		cu.err = run(ctx)
		cancel()
		close(cu.done)
		c.mu.Lock()
		c.running = nil
		if c.next != nil {
			c.start(run)
		}
		c.mu.Unlock()
	}()
	return cu
}

// catchUpTimeout bounds one shared catch-up (kv.Node.CatchUpCatalog
// bounds its barrier at 2 s itself).
const catchUpTimeout = 5 * time.Second
