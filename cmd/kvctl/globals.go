package main

import (
	"crypto/tls"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/quorumkv/quorumkv/certs"
	"github.com/quorumkv/quorumkv/client"
)

// Global flags (SPEC.md "kvctl"). urfave/cli parses a flag only where it
// is declared, so they are declared on the app and again on every command:
// "kvctl -o json get k" and "kvctl get k -o json" both work. Each has an
// environment variable, which urfave/cli is not told about: it would take
// the variable as set at every level and let it beat a flag given on the
// command line. lookup applies the rule instead: the innermost (then the
// last) occurrence on the command line wins, then the environment, then
// the default.
func globalFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{
			Name:  "endpoints",
			Usage: "nodes to talk to, host:port, comma-separated, tried in order" + envUsage("endpoints"),
			Value: "127.0.0.1:7070",
		},
		outputFlag(),
		&cli.DurationFlag{
			Name:  "timeout",
			Usage: "give up on a request after this long" + envUsage("timeout"),
			Value: 5 * time.Second,
		},
		&cli.StringFlag{
			Name:    "keyspace",
			Aliases: []string{"k"},
			Usage:   "keyspace to read and write" + envUsage("keyspace"),
			Value:   "default",
		},
		&cli.StringFlag{
			Name:  "certs-dir",
			Usage: "talk TLS, checking the nodes against this directory's ca.crt, and sign in with --user's client certificate if it holds one (kvd cert writes them)" + envUsage("certs-dir"),
		},
		&cli.StringFlag{
			Name:  "user",
			Usage: "the user to log in as: with --password, or with --certs-dir by its client certificate (client.USER.crt) if the directory holds one" + envUsage("user"),
			Value: "root",
		},
		&cli.StringFlag{
			Name:  "password",
			Usage: "log in as --user with this password (a cluster whose auth is on; prefer the environment variable, which ps does not show)" + envUsage("password"),
		},
	}
}

// globalEnv names each global flag's environment variable.
var globalEnv = map[string]string{
	"endpoints": "KVCTL_ENDPOINTS",
	"output":    "KVCTL_OUTPUT",
	"timeout":   "KVCTL_TIMEOUT",
	"keyspace":  "KVCTL_KEYSPACE",
	"certs-dir": "KVCTL_CERTS_DIR",
	"user":      "KVCTL_USER",
	"password":  "KVCTL_PASSWORD",
}

func envUsage(name string) string {
	return " [$" + globalEnv[name] + "; the flag wins]"
}

// withGlobals returns the command with the global flags added.
func withGlobals(cmd *cli.Command) *cli.Command {
	cmd.Flags = append(cmd.Flags, globalFlags()...)
	return cmd
}

// setIn returns the innermost context of c's lineage where the flag name
// is on the command line (urfave/cli sees only the command line: the
// flags carry no EnvVars), or nil.
func setIn(c *cli.Context, name string) *cli.Context {
	for _, ctx := range c.Lineage() {
		if ctx.IsSet(name) {
			return ctx
		}
	}
	return nil
}

// lookupString reads a global string flag: from the command line, else
// its environment variable, else its default.
func lookupString(c *cli.Context, name string) string {
	if ctx := setIn(c, name); ctx != nil {
		return ctx.String(name)
	}
	if v, ok := os.LookupEnv(globalEnv[name]); ok {
		return v
	}
	return c.String(name)
}

// endpoints reads --endpoints.
func endpoints(c *cli.Context) ([]string, error) {
	var eps []string
	for _, e := range strings.Split(lookupString(c, "endpoints"), ",") {
		if e = strings.TrimSpace(e); e != "" {
			eps = append(eps, e)
		}
	}
	if len(eps) == 0 {
		return nil, usagef("--endpoints is empty")
	}
	return eps, nil
}

// timeout reads --timeout.
func timeout(c *cli.Context) (time.Duration, error) {
	t, from := c.Duration("timeout"), "--timeout"
	if ctx := setIn(c, "timeout"); ctx != nil {
		t = ctx.Duration("timeout")
	} else if v, ok := os.LookupEnv(globalEnv["timeout"]); ok {
		from = "$" + globalEnv["timeout"]
		var err error
		if t, err = time.ParseDuration(v); err != nil {
			return 0, usagef("%s %q: want a duration such as 5s or 1m", from, v)
		}
	}
	if t <= 0 {
		return 0, usagef("%s %v: want a positive duration", from, t)
	}
	return t, nil
}

// newClient builds the client from the global flags.
func newClient(c *cli.Context) (*client.Client, error) {
	endpoints, err := endpoints(c)
	if err != nil {
		return nil, err
	}
	timeout, err := timeout(c)
	if err != nil {
		return nil, err
	}
	tlsConfig, err := clientTLS(c)
	if err != nil {
		return nil, err
	}
	cl, err := client.New(client.Config{Endpoints: endpoints, Timeout: timeout, TLS: tlsConfig,
		User: lookupString(c, "user"), Password: lookupString(c, "password")})
	if err != nil {
		return nil, fmt.Errorf("kvctl: %w", err)
	}
	return cl, nil
}

// clientTLS is the TLS configuration of --certs-dir and --user, or nil
// without --certs-dir.
func clientTLS(c *cli.Context) (*tls.Config, error) {
	dir := lookupString(c, "certs-dir")
	if dir == "" {
		return nil, nil
	}
	b, err := certs.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("kvctl: --certs-dir %s: %w", dir, err)
	}
	return b.ClientTLS(lookupString(c, "user")), nil
}
