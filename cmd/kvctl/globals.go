package main

import (
	"crypto/tls"
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/quorumkv/quorumkv/certs"
	"github.com/quorumkv/quorumkv/client"
)

// Global flags (SPEC.md "kvctl"). urfave/cli parses a flag only where it
// is declared, so they are declared on the app and again on every command,
// and read with lookup, which takes the value from the innermost place it
// was set: "kvctl -o json get k" and "kvctl get k -o json" both work.
func globalFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{
			Name:    "endpoints",
			Usage:   "nodes to talk to, host:port, comma-separated, tried in order",
			Value:   "127.0.0.1:7070",
			EnvVars: []string{"KVCTL_ENDPOINTS"},
		},
		outputFlag(),
		&cli.DurationFlag{
			Name:    "timeout",
			Usage:   "give up on a request after this long",
			Value:   5 * time.Second,
			EnvVars: []string{"KVCTL_TIMEOUT"},
		},
		&cli.StringFlag{
			Name:    "keyspace",
			Aliases: []string{"k"},
			Usage:   "keyspace to read and write",
			Value:   "default",
			EnvVars: []string{"KVCTL_KEYSPACE"},
		},
		&cli.StringFlag{
			Name:    "certs-dir",
			Usage:   "talk TLS, checking the nodes against this directory's ca.crt, and sign in with --user's client certificate if it holds one (kvd cert writes them)",
			EnvVars: []string{"KVCTL_CERTS_DIR"},
		},
		&cli.StringFlag{
			Name:    "user",
			Usage:   "the user to log in as: with --password, or with --certs-dir by its client certificate (client.USER.crt) if the directory holds one",
			Value:   "root",
			EnvVars: []string{"KVCTL_USER"},
		},
		&cli.StringFlag{
			Name:    "password",
			Usage:   "log in as --user with this password (a cluster whose auth is on; prefer the environment variable, which ps does not show)",
			EnvVars: []string{"KVCTL_PASSWORD"},
		},
	}
}

// withGlobals returns the command with the global flags added.
func withGlobals(cmd *cli.Command) *cli.Command {
	cmd.Flags = append(cmd.Flags, globalFlags()...)
	return cmd
}

// setIn returns the innermost context of c's lineage where name was set
// (on the command line or by its environment variable), or c.
func setIn(c *cli.Context, name string) *cli.Context {
	for _, ctx := range c.Lineage() {
		if ctx.IsSet(name) {
			return ctx
		}
	}
	return c
}

func lookupString(c *cli.Context, name string) string { return setIn(c, name).String(name) }

func lookupDuration(c *cli.Context, name string) time.Duration {
	return setIn(c, name).Duration(name)
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
	t := lookupDuration(c, "timeout")
	if t <= 0 {
		return 0, usagef("--timeout %v: want a positive duration", t)
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
