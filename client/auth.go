package client

import (
	"context"
	"errors"
	"sync"
	"time"

	"connectrpc.com/connect"

	v1 "github.com/quorumkv/quorumkv/api/quorumkv/v1"
	"github.com/quorumkv/quorumkv/api/quorumkv/v1/quorumkvv1connect"
)

// A client with Config.User and Config.Password logs in with
// Auth.Authenticate before its first call and sends the token it gets
// with every call ("Authorization: Bearer"). It logs in again when the
// token nears its end, or when a node refuses it as Unauthenticated (the
// password changed, or auth was turned off and on again), once per call.
// While the cluster's auth is off it sends no token.

// tokens holds the client's token.
type tokens struct {
	mu      sync.Mutex
	token   string
	renewAt time.Time
}

// bearer returns the Authorization header to send, logging in if the
// token is missing or due for renewal; "" when there is no password to log
// in with, or the cluster's auth is off.
func (c *Client) bearer(ctx context.Context) (string, error) {
	if c.cfg.Password == "" {
		return "", nil
	}
	c.tokens.mu.Lock()
	defer c.tokens.mu.Unlock()
	if time.Now().Before(c.tokens.renewAt) {
		return c.tokens.token, nil
	}
	resp, err := c.login(ctx)
	switch {
	case connect.CodeOf(err) == connect.CodeFailedPrecondition:
		// Auth is off: no token, and ask again in a while.
		c.tokens.token, c.tokens.renewAt = "", time.Now().Add(time.Minute)
		return "", nil
	case err != nil:
		return "", err
	}
	now := time.Now()
	exp := time.UnixMilli(resp.ExpiresUnixMs)
	c.tokens.token = "Bearer " + resp.Token
	c.tokens.renewAt = now.Add(exp.Sub(now) * 4 / 5) // well before it ends, whatever the clocks
	return c.tokens.token, nil
}

// login asks for a token with Config.User and Config.Password.
func (c *Client) login(ctx context.Context) (*v1.AuthenticateResponse, error) {
	return unary(ctx, c, c.authNoToken, policy{}, &v1.AuthenticateRequest{User: c.cfg.User, Password: c.cfg.Password},
		quorumkvv1connect.AuthClient.Authenticate)
}

// forget drops token, refused by a node, so that the next call logs in.
func (c *Client) forget(token string) {
	c.tokens.mu.Lock()
	defer c.tokens.mu.Unlock()
	if c.tokens.token == token {
		c.tokens.token, c.tokens.renewAt = "", time.Time{}
	}
}

// sendToken is the interceptor of the KV, Admin and Auth clients: it adds
// the token, and logs in again once if a node refuses it.
func (c *Client) sendToken() connect.Interceptor {
	return connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			token, err := c.bearer(ctx)
			if err != nil {
				return nil, err
			}
			if token == "" {
				return next(ctx, req)
			}
			req.Header().Set("Authorization", token)
			resp, err := next(ctx, req)
			if connect.CodeOf(err) != connect.CodeUnauthenticated {
				return resp, err
			}
			c.forget(token)
			if token, err = c.bearer(ctx); err != nil {
				return nil, err
			}
			req.Header().Set("Authorization", token)
			return next(ctx, req)
		}
	})
}

// Token logs in (Config.User, Config.Password) and returns a token to send
// as "Authorization: Bearer <token>", as curl does with REST, and when it
// expires.
func (c *Client) Token(ctx context.Context) (string, time.Time, error) {
	if c.cfg.Password == "" {
		return "", time.Time{}, errors.New("client: a token needs a user and its password")
	}
	resp, err := c.login(ctx)
	if err != nil {
		return "", time.Time{}, authError(err)
	}
	return resp.Token, time.UnixMilli(resp.ExpiresUnixMs), nil
}

// authError undoes wrap's sentinels, which mean other things in the KV
// service: here FailedPrecondition is a refused change, not a lost
// compare-and-swap, and NotFound a user or role, not a key.
func authError(err error) error {
	var cerr *connect.Error
	if (errors.Is(err, ErrConditionFailed) || errors.Is(err, ErrNotFound)) && errors.As(err, &cerr) {
		return cerr
	}
	return err
}

// authCall is unary for the Auth service.
func authCall[Req, Resp any](ctx context.Context, c *Client, p policy, req *Req,
	rpc func(quorumkvv1connect.AuthClient, context.Context, *connect.Request[Req]) (*connect.Response[Resp], error)) (*Resp, error) {
	resp, err := unary(ctx, c, c.auth, p, req, rpc)
	return resp, authError(err)
}

// WhoAmI says whether the cluster's auth is on, who the client is to it,
// and what it may do.
func (c *Client) WhoAmI(ctx context.Context) (*v1.WhoAmIResponse, error) {
	return authCall(ctx, c, policy{}, &v1.WhoAmIRequest{}, quorumkvv1connect.AuthClient.WhoAmI)
}

// AuthEnable turns the cluster's authentication on.
func (c *Client) AuthEnable(ctx context.Context) error {
	_, err := authCall(ctx, c, policy{write: true}, &v1.AuthEnableRequest{}, quorumkvv1connect.AuthClient.AuthEnable)
	return err
}

// AuthDisable turns the cluster's authentication off.
func (c *Client) AuthDisable(ctx context.Context) error {
	_, err := authCall(ctx, c, policy{write: true}, &v1.AuthDisableRequest{}, quorumkvv1connect.AuthClient.AuthDisable)
	return err
}

// UserAdd adds a user with a password ("" for one that logs in with a
// client certificate only) and roles.
func (c *Client) UserAdd(ctx context.Context, name, password string, roles []string) error {
	_, err := authCall(ctx, c, policy{write: true}, &v1.UserAddRequest{Name: name, Password: password, Roles: roles}, quorumkvv1connect.AuthClient.UserAdd)
	return err
}

// Users lists the users.
func (c *Client) Users(ctx context.Context) ([]*v1.User, error) {
	resp, err := authCall(ctx, c, policy{}, &v1.UserListRequest{}, quorumkvv1connect.AuthClient.UserList)
	return resp.GetUsers(), err
}

// UserDelete deletes a user.
func (c *Client) UserDelete(ctx context.Context, name string) error {
	_, err := authCall(ctx, c, policy{write: true}, &v1.UserDeleteRequest{Name: name}, quorumkvv1connect.AuthClient.UserDelete)
	return err
}

// UserChangePassword sets a user's password ("" removes it).
func (c *Client) UserChangePassword(ctx context.Context, name, password string) error {
	_, err := authCall(ctx, c, policy{write: true}, &v1.UserChangePasswordRequest{Name: name, Password: password}, quorumkvv1connect.AuthClient.UserChangePassword)
	return err
}

// UserGrantRole gives a user a role.
func (c *Client) UserGrantRole(ctx context.Context, user, role string) error {
	_, err := authCall(ctx, c, policy{write: true}, &v1.UserGrantRoleRequest{User: user, Role: role}, quorumkvv1connect.AuthClient.UserGrantRole)
	return err
}

// UserRevokeRole takes a role from a user.
func (c *Client) UserRevokeRole(ctx context.Context, user, role string) error {
	_, err := authCall(ctx, c, policy{write: true}, &v1.UserRevokeRoleRequest{User: user, Role: role}, quorumkvv1connect.AuthClient.UserRevokeRole)
	return err
}

// RoleAdd adds a role without permissions.
func (c *Client) RoleAdd(ctx context.Context, name string) error {
	_, err := authCall(ctx, c, policy{write: true}, &v1.RoleAddRequest{Name: name}, quorumkvv1connect.AuthClient.RoleAdd)
	return err
}

// Roles lists the roles.
func (c *Client) Roles(ctx context.Context) ([]*v1.Role, error) {
	resp, err := authCall(ctx, c, policy{}, &v1.RoleListRequest{}, quorumkvv1connect.AuthClient.RoleList)
	return resp.GetRoles(), err
}

// RoleDelete deletes a role, and takes it from every user.
func (c *Client) RoleDelete(ctx context.Context, name string) error {
	_, err := authCall(ctx, c, policy{write: true}, &v1.RoleDeleteRequest{Name: name}, quorumkvv1connect.AuthClient.RoleDelete)
	return err
}

// RoleGrant grants a role access on the keyspaces a pattern names (a
// name, a prefix ending in '*', or "*").
func (c *Client) RoleGrant(ctx context.Context, role, keyspace string, access v1.Access) error {
	_, err := authCall(ctx, c, policy{write: true}, &v1.RoleGrantPermissionRequest{Role: role, Permission: &v1.Permission{Keyspace: keyspace, Access: access}},
		quorumkvv1connect.AuthClient.RoleGrantPermission)
	return err
}

// RoleRevoke takes a role's permission on a pattern away.
func (c *Client) RoleRevoke(ctx context.Context, role, keyspace string) error {
	_, err := authCall(ctx, c, policy{write: true}, &v1.RoleRevokePermissionRequest{Role: role, Keyspace: keyspace},
		quorumkvv1connect.AuthClient.RoleRevokePermission)
	return err
}
