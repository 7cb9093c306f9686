package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"
	"google.golang.org/protobuf/proto"

	v1 "github.com/quorumkv/quorumkv/api/quorumkv/v1"
	"github.com/quorumkv/quorumkv/client"
)

// kvctl user, role and auth: etcdctl's shape (docs/security.md).

func authCommand() *cli.Command {
	return &cli.Command{
		Name:  "auth",
		Usage: "turn authentication on or off, show who you are to the cluster, print a token for curl",
		Subcommands: []*cli.Command{
			withGlobals(&cli.Command{Name: "enable", Usage: "turn authentication on: every request then needs a user (root needs a password or its client certificate first)",
				Action: simpleAuth("enable", (*client.Client).AuthEnable, "authentication is on")}),
			withGlobals(&cli.Command{Name: "disable", Usage: "turn authentication off: anyone who reaches a node may do anything",
				Action: simpleAuth("disable", (*client.Client).AuthDisable, "authentication is off")}),
			withGlobals(&cli.Command{Name: "status", Usage: "whether authentication is on, who you are to the cluster and what you may do", Action: authStatus}),
			withGlobals(&cli.Command{Name: "token", Usage: "log in as --user with --password and print a token (curl -H \"Authorization: Bearer $TOKEN\")", Action: authToken}),
		},
	}
}

func userCommand() *cli.Command {
	newPassword := []cli.Flag{
		&cli.StringFlag{Name: "new-password", Usage: "the password to set (without it, kvctl asks on a terminal, or reads a line from standard input)"},
		&cli.BoolFlag{Name: "no-password", Usage: "no password: the user logs in with its client certificate only"},
	}
	return &cli.Command{
		Name:  "user",
		Usage: "manage the users who may log in",
		Subcommands: []*cli.Command{
			withGlobals(&cli.Command{Name: "add", Usage: "add a user", ArgsUsage: "NAME",
				Flags:  append([]cli.Flag{&cli.StringFlag{Name: "roles", Usage: "roles to give it, comma-separated"}}, newPassword...),
				Action: userAdd}),
			withGlobals(&cli.Command{Name: "list", Usage: "list the users with their roles", Action: listTable((*client.Client).Users, func(us []*v1.User) proto.Message { return &v1.UserListResponse{Users: us} },
				"USER\tPASSWORD\tROLES", func(u *v1.User) string {
					return u.Name + "\t" + yesNo(u.HasPassword) + "\t" + orNone(strings.Join(u.Roles, ","))
				})}),
			withGlobals(&cli.Command{Name: "delete", Usage: "delete a user", ArgsUsage: "NAME", Action: byName((*client.Client).UserDelete, "deleted", "user %s deleted")}),
			withGlobals(&cli.Command{Name: "passwd", Usage: "set a user's password (yours, or anyone's as the cluster's admin); its tokens end", ArgsUsage: "NAME",
				Flags: newPassword, Action: userPasswd}),
			withGlobals(&cli.Command{Name: "grant-role", Usage: "give a user a role", ArgsUsage: "USER ROLE", Action: userRole(true)}),
			withGlobals(&cli.Command{Name: "revoke-role", Usage: "take a role from a user", ArgsUsage: "USER ROLE", Action: userRole(false)}),
		},
	}
}

func roleCommand() *cli.Command {
	return &cli.Command{
		Name:  "role",
		Usage: "manage roles: what their users may do on which keyspaces",
		Subcommands: []*cli.Command{
			withGlobals(&cli.Command{Name: "add", Usage: "add a role without permissions", ArgsUsage: "NAME", Action: byName((*client.Client).RoleAdd, "role", "role %s added")}),
			withGlobals(&cli.Command{Name: "list", Usage: "list the roles with their permissions", Action: listTable((*client.Client).Roles, func(rs []*v1.Role) proto.Message { return &v1.RoleListResponse{Roles: rs} },
				"ROLE\tPERMISSIONS", func(r *v1.Role) string { return r.Name + "\t" + orNone(permissionsText(r.Permissions)) })}),
			withGlobals(&cli.Command{Name: "delete", Usage: "delete a role, and take it from its users", ArgsUsage: "NAME", Action: byName((*client.Client).RoleDelete, "deleted", "role %s deleted")}),
			withGlobals(&cli.Command{
				Name: "grant", Usage: "grant a role read, write or admin on keyspaces: a name, a prefix ending in '*', or '*' for all (admin on '*' administers the cluster)",
				ArgsUsage: "ROLE KEYSPACE-PATTERN read|write|admin", Action: roleGrant,
			}),
			withGlobals(&cli.Command{Name: "revoke", Usage: "take a role's permission on a keyspace pattern away", ArgsUsage: "ROLE KEYSPACE-PATTERN", Action: roleRevoke}),
		},
	}
}

func simpleAuth(verb string, f func(*client.Client, context.Context) error, text string) cli.ActionFunc {
	return func(c *cli.Context) error {
		if _, err := args(c); err != nil {
			return err
		}
		return withClient(c, func(ctx context.Context, cl *client.Client, out format) error {
			if err := f(cl, ctx); err != nil {
				return err
			}
			return printResult(c, out, map[string]any{"auth": verb + "d"}, text)
		})
	}
}

func authStatus(c *cli.Context) error {
	if _, err := args(c); err != nil {
		return err
	}
	return withClient(c, func(ctx context.Context, cl *client.Client, out format) error {
		who, err := cl.WhoAmI(ctx)
		if err != nil {
			return err
		}
		if out == formatJSON {
			return writeProtoJSON(c.App.Writer, who)
		}
		state := "off: every caller may do anything"
		if who.Enabled {
			state = "on"
		}
		user := "nobody (not logged in)"
		switch {
		case who.Method == "node":
			user = "a node (node certificate)"
		case who.User != "":
			user = fmt.Sprintf("%s (by %s)", who.User, who.Method)
		}
		_, err = fmt.Fprintf(c.App.Writer, "authentication: %s\nyou are: %s\nroles: %s\npermissions: %s\n",
			state, user, orNone(strings.Join(who.Roles, ", ")), orNone(permissionsText(who.Permissions)))
		return err
	})
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func authToken(c *cli.Context) error {
	if _, err := args(c); err != nil {
		return err
	}
	return withClient(c, func(ctx context.Context, cl *client.Client, out format) error {
		token, exp, err := cl.Token(ctx)
		if err != nil {
			return err
		}
		return printResult(c, out, map[string]any{"token": token, "expires": exp.UTC().Format(time.RFC3339)}, token)
	})
}

// newPassword reads the password to set: --new-password, none with
// --no-password, else asked twice on a terminal or read as one line from
// standard input.
func newPassword(c *cli.Context) (string, error) {
	switch {
	case c.IsSet("new-password") && c.Bool("no-password"):
		return "", usagef("--new-password and --no-password: choose one")
	case c.IsSet("new-password"):
		if c.String("new-password") == "" {
			return "", usagef("--new-password is empty: use --no-password for a user without one")
		}
		return c.String("new-password"), nil
	case c.Bool("no-password"):
		return "", nil
	}
	if f, ok := c.App.Reader.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(c.App.ErrWriter, "new password: ")
		p1, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(c.App.ErrWriter)
		if err != nil {
			return "", err
		}
		fmt.Fprint(c.App.ErrWriter, "again: ")
		p2, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(c.App.ErrWriter)
		if err != nil {
			return "", err
		}
		if string(p1) != string(p2) {
			return "", errors.New("kvctl: the passwords differ")
		}
		if len(p1) == 0 {
			return "", usagef("the password is empty: use --no-password for a user without one")
		}
		return string(p1), nil
	}
	line, err := bufio.NewReader(c.App.Reader).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	if line = strings.TrimRight(line, "\r\n"); line == "" {
		return "", usagef("no password on standard input: give one line, --new-password, or --no-password")
	}
	return line, nil
}

func userAdd(c *cli.Context) error {
	a, err := args(c, "NAME")
	if err != nil {
		return err
	}
	password, err := newPassword(c)
	if err != nil {
		return err
	}
	var roles []string
	for _, r := range strings.Split(c.String("roles"), ",") {
		if r = strings.TrimSpace(r); r != "" {
			roles = append(roles, r)
		}
	}
	return withClient(c, func(ctx context.Context, cl *client.Client, out format) error {
		if err := cl.UserAdd(ctx, a[0], password, roles); err != nil {
			return err
		}
		return printResult(c, out, map[string]any{"user": a[0], "roles": roles}, "user "+a[0]+" added")
	})
}

// listTable is the action of a list command: it fetches the items, and
// prints them as JSON (wrapped in their list message) or as a table of
// header's columns, a row per item.
func listTable[T any](fetch func(*client.Client, context.Context) ([]T, error), wrap func([]T) proto.Message,
	header string, row func(T) string) cli.ActionFunc {
	return func(c *cli.Context) error {
		if _, err := args(c); err != nil {
			return err
		}
		return withClient(c, func(ctx context.Context, cl *client.Client, out format) error {
			items, err := fetch(cl, ctx)
			if err != nil {
				return err
			}
			if out == formatJSON {
				return writeProtoJSON(c.App.Writer, wrap(items))
			}
			tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, header)
			for _, it := range items {
				fmt.Fprintln(tw, row(it))
			}
			return tw.Flush()
		})
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// byName is the action of a command that takes a NAME and makes one
// call with it; field names it in JSON output, done (a format of the
// name) in text.
func byName(call func(*client.Client, context.Context, string) error, field, done string) cli.ActionFunc {
	return func(c *cli.Context) error {
		a, err := args(c, "NAME")
		if err != nil {
			return err
		}
		return withClient(c, func(ctx context.Context, cl *client.Client, out format) error {
			if err := call(cl, ctx, a[0]); err != nil {
				return err
			}
			return printResult(c, out, map[string]any{field: a[0]}, fmt.Sprintf(done, a[0]))
		})
	}
}

func userPasswd(c *cli.Context) error {
	a, err := args(c, "NAME")
	if err != nil {
		return err
	}
	password, err := newPassword(c)
	if err != nil {
		return err
	}
	return withClient(c, func(ctx context.Context, cl *client.Client, out format) error {
		if err := cl.UserChangePassword(ctx, a[0], password); err != nil {
			return err
		}
		return printResult(c, out, map[string]any{"user": a[0]}, "password of "+a[0]+" changed")
	})
}

func userRole(grant bool) cli.ActionFunc {
	return func(c *cli.Context) error {
		a, err := args(c, "USER", "ROLE")
		if err != nil {
			return err
		}
		return withClient(c, func(ctx context.Context, cl *client.Client, out format) error {
			f, text := cl.UserGrantRole, fmt.Sprintf("user %s has role %s", a[0], a[1])
			if !grant {
				f, text = cl.UserRevokeRole, fmt.Sprintf("user %s no longer has role %s", a[0], a[1])
			}
			if err := f(ctx, a[0], a[1]); err != nil {
				return err
			}
			return printResult(c, out, map[string]any{"user": a[0], "role": a[1], "granted": grant}, text)
		})
	}
}

var accessNames = map[string]v1.Access{"read": v1.Access_ACCESS_READ, "write": v1.Access_ACCESS_WRITE, "admin": v1.Access_ACCESS_ADMIN}

func accessName(a v1.Access) string {
	for name, v := range accessNames {
		if v == a {
			return name
		}
	}
	return a.String()
}

func permissionsText(perms []*v1.Permission) string {
	parts := make([]string, len(perms))
	for i, p := range perms {
		parts[i] = accessName(p.Access) + " on " + p.Keyspace
	}
	return strings.Join(parts, ", ")
}

func roleGrant(c *cli.Context) error {
	a, err := args(c, "ROLE", "KEYSPACE-PATTERN", "ACCESS")
	if err != nil {
		return err
	}
	access, ok := accessNames[a[2]]
	if !ok {
		return usagef("access %q: want read, write or admin", a[2])
	}
	return withClient(c, func(ctx context.Context, cl *client.Client, out format) error {
		if err := cl.RoleGrant(ctx, a[0], a[1], access); err != nil {
			return err
		}
		return printResult(c, out, map[string]any{"role": a[0], "keyspace": a[1], "access": a[2]},
			fmt.Sprintf("role %s has %s on %s", a[0], a[2], a[1]))
	})
}

func roleRevoke(c *cli.Context) error {
	a, err := args(c, "ROLE", "KEYSPACE-PATTERN")
	if err != nil {
		return err
	}
	return withClient(c, func(ctx context.Context, cl *client.Client, out format) error {
		if err := cl.RoleRevoke(ctx, a[0], a[1]); err != nil {
			return err
		}
		return printResult(c, out, map[string]any{"role": a[0], "keyspace": a[1], "revoked": true},
			fmt.Sprintf("role %s has no permission on %s", a[0], a[1]))
	})
}
