package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"github.com/quorumkv/quorumkv/client"
)

// Exit codes of data commands (SPEC.md).
const (
	exitNotFound        = 3
	exitConditionFailed = 4
)

func kvCommands() []*cli.Command {
	wFlag := &cli.StringFlag{Name: "w", Usage: "replicas that must acknowledge (eventual keyspaces): N, one, quorum or all"}
	rFlag := &cli.StringFlag{Name: "r", Usage: "replicas that must answer (eventual keyspaces): N, one, quorum or all"}
	return []*cli.Command{
		withGlobals(&cli.Command{
			Name: "put", Usage: "write a value", ArgsUsage: "KEY VALUE   (VALUE - reads standard input)",
			Flags: []cli.Flag{wFlag}, Action: put,
		}),
		withGlobals(&cli.Command{
			Name: "get", Usage: "read a key (exit 3 when absent): piped, the value's bytes exactly; on a terminal, with a newline", ArgsUsage: "KEY",
			Flags: []cli.Flag{rFlag}, Action: get,
		}),
		withGlobals(&cli.Command{
			Name: "del", Usage: "delete a key; with --expect, only if it holds that value (exit 4 when it does not)", ArgsUsage: "KEY",
			Flags: []cli.Flag{wFlag,
				&cli.StringFlag{Name: "expect", Usage: "delete only if the key holds this value"},
				&cli.StringFlag{Name: "expect-version", Usage: "delete only if the key was last written at this version"},
			}, Action: del,
		}),
		withGlobals(&cli.Command{
			Name: "scan", Usage: "list keys and their values in key order",
			Description: `Prints one key a line: the key, a tab, the value. A key or value is
printed as it is unless it starts with a double quote or holds anything
but printable UTF-8 text and spaces (a tab, a newline, a control
character, a byte that is not UTF-8): then it is printed quoted as Go's
strconv.Quote quotes it, which strconv.Unquote reverses. So a line splits at its first
tab, and a field starting with " is quoted.

-o json prints a list of {"key_base64", "value_base64", "version"}:
keys and values in base64 always, as etcdctl -w json prints them.`,
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "prefix", Usage: "only keys starting with this"},
				&cli.IntFlag{Name: "limit", Usage: "at most this many keys, 1 or more", DefaultText: "every key, fetched in pages of the server's page limit"},
			},
			Action: scan,
		}),
		withGlobals(&cli.Command{
			Name: "cas", Usage: "compare-and-swap: write NEW only if the key holds OLD (exit 4 when it does not)",
			ArgsUsage: "KEY NEW",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "expect", Usage: "the value the key must hold"},
				&cli.BoolFlag{Name: "expect-absent", Usage: "the key must not exist (put if absent)"},
				&cli.StringFlag{Name: "expect-version", Usage: "the version the key must have been written with"},
			},
			Action: cas,
		}),
	}
}

// quorumSize parses --w/--r: a count, or one, quorum, all (the last two
// resolved by the server against the keyspace's N).
func quorumSize(c *cli.Context, name string) (int, error) {
	v := c.String(name)
	switch v {
	case "":
		return 0, nil
	case "one":
		return 1, nil
	case "quorum":
		return client.SizeQuorum, nil
	case "all":
		return client.SizeAll, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, usagef("--%s %q: want a positive count, one, quorum or all", name, v)
	}
	return n, nil
}

func args(c *cli.Context, names ...string) ([]string, error) {
	if c.NArg() != len(names) {
		return nil, usagef("%s needs %d argument(s): %v, got %d", c.Command.Name, len(names), names, c.NArg())
	}
	return c.Args().Slice(), nil
}

// exitFor turns the client's sentinel errors into SPEC.md exit codes.
func exitFor(err error, stderr io.Writer) error {
	switch {
	case errors.Is(err, client.ErrNoKeyspace):
		return err // exit 1: 3 says the key is absent, and a script would believe it
	case errors.Is(err, client.ErrNotFound):
		fmt.Fprintf(stderr, "kvctl: %s\n", errorText(err))
		return exitCode(exitNotFound)
	case errors.Is(err, client.ErrConditionFailed):
		fmt.Fprintf(stderr, "kvctl: %s\n", errorText(err))
		return exitCode(exitConditionFailed)
	}
	return err
}

func put(c *cli.Context) error {
	a, err := args(c, "KEY", "VALUE")
	if err != nil {
		return err
	}
	w, err := quorumSize(c, "w")
	if err != nil {
		return err
	}
	value := []byte(a[1])
	if a[1] == "-" {
		if value, err = io.ReadAll(c.App.Reader); err != nil {
			return fmt.Errorf("read standard input: %w", err)
		}
	}
	return withClient(c, func(ctx context.Context, cl *client.Client, out format) error {
		version, err := cl.Put(ctx, lookupString(c, "keyspace"), []byte(a[0]), value, client.Quorum{W: w})
		if err != nil {
			return err
		}
		return printResult(c, out, map[string]any{"key_base64": []byte(a[0]), "version": version}, "OK")
	})
}

func get(c *cli.Context) error {
	a, err := args(c, "KEY")
	if err != nil {
		return err
	}
	r, err := quorumSize(c, "r")
	if err != nil {
		return err
	}
	return withClient(c, func(ctx context.Context, cl *client.Client, out format) error {
		kv, err := cl.Get(ctx, lookupString(c, "keyspace"), []byte(a[0]), client.Quorum{R: r})
		if err != nil {
			return err
		}
		if out == formatJSON {
			return writeJSON(c.App.Writer, toKVJSON(kv))
		}
		// Piped, the value's bytes exactly, as a script saves them; on a
		// terminal, a newline after it keeps the prompt on its own line.
		if isTerminal(c.App.Writer) {
			_, err = c.App.Writer.Write(append(kv.Value, '\n'))
			return err
		}
		_, err = c.App.Writer.Write(kv.Value)
		return err
	})
}

func del(c *cli.Context) error {
	a, err := args(c, "KEY")
	if err != nil {
		return err
	}
	w, err := quorumSize(c, "w")
	if err != nil {
		return err
	}
	var expect *client.Expect
	switch {
	case c.IsSet("expect") && c.IsSet("expect-version"):
		return usagef("del takes at most one of --expect VALUE, --expect-version V")
	case c.IsSet("expect"):
		expect = &client.Expect{Value: []byte(c.String("expect"))}
	case c.IsSet("expect-version"):
		expect = &client.Expect{Version: c.String("expect-version")}
	}
	return withClient(c, func(ctx context.Context, cl *client.Client, out format) error {
		var existed bool
		var err error
		if expect != nil {
			existed, err = cl.DeleteIf(ctx, lookupString(c, "keyspace"), []byte(a[0]), *expect, client.Quorum{W: w})
		} else {
			existed, err = cl.Delete(ctx, lookupString(c, "keyspace"), []byte(a[0]), client.Quorum{W: w})
		}
		if err != nil {
			return err
		}
		return printResult(c, out, map[string]any{"key_base64": []byte(a[0]), "existed": existed}, "OK")
	})
}

func scan(c *cli.Context) error {
	if _, err := args(c); err != nil {
		return err
	}
	if c.IsSet("limit") && c.Int("limit") < 1 {
		return usagef("--limit %d: want 1 or more (without --limit, every key)", c.Int("limit"))
	}
	return withClient(c, func(ctx context.Context, cl *client.Client, out format) error {
		// Without --limit, every key: the client pages at the server's
		// page size.
		kvs, err := cl.Scan(ctx, lookupString(c, "keyspace"), []byte(c.String("prefix")), c.Int("limit"), 0)
		if err != nil {
			return err
		}
		if out == formatJSON {
			list := make([]kvJSON, len(kvs))
			for i, kv := range kvs {
				list[i] = toKVJSON(kv)
			}
			return writeJSON(c.App.Writer, list)
		}
		w := bufio.NewWriter(c.App.Writer)
		for _, kv := range kvs {
			fmt.Fprintf(w, "%s\t%s\n", scanField(kv.Key), scanField(kv.Value))
		}
		return w.Flush()
	})
}

// scanField is a key or value as kvctl scan prints it (its Description
// says how): as it is, or quoted when it starts with a double quote or
// holds anything but printable UTF-8 text and spaces.
func scanField(b []byte) string {
	quote := !utf8.Valid(b) || len(b) > 0 && b[0] == '"'
	for _, r := range string(b) {
		if quote || !strconv.IsPrint(r) {
			quote = true
			break
		}
	}
	if quote {
		return strconv.Quote(string(b))
	}
	return string(b)
}

func cas(c *cli.Context) error {
	a, err := args(c, "KEY", "NEW")
	if err != nil {
		return err
	}
	var expect client.Expect
	set := 0
	if c.IsSet("expect") {
		expect.Value, set = []byte(c.String("expect")), set+1
	}
	if c.Bool("expect-absent") {
		expect.Absent, set = true, set+1
	}
	if c.IsSet("expect-version") {
		expect.Version, set = c.String("expect-version"), set+1
	}
	if set != 1 {
		return usagef("cas needs exactly one of --expect OLD, --expect-absent, --expect-version V")
	}
	return withClient(c, func(ctx context.Context, cl *client.Client, out format) error {
		version, err := cl.CompareAndSwap(ctx, lookupString(c, "keyspace"), []byte(a[0]), expect, []byte(a[1]))
		if err != nil {
			return err
		}
		return printResult(c, out, map[string]any{"key_base64": []byte(a[0]), "version": version}, "OK")
	})
}

// withClient runs f with a client and the output format, mapping errors to
// exit codes.
func withClient(c *cli.Context, f func(ctx context.Context, cl *client.Client, out format) error) error {
	out, err := outputFormat(c)
	if err != nil {
		return err
	}
	cl, err := newClient(c)
	if err != nil {
		return err
	}
	return exitFor(f(c.Context, cl, out), c.App.ErrWriter)
}

// printResult prints a JSON object, or the short text for people.
func printResult(c *cli.Context, out format, obj map[string]any, text string) error {
	if out == formatJSON {
		return writeJSON(c.App.Writer, obj)
	}
	_, err := fmt.Fprintln(c.App.Writer, text)
	return err
}

// kvJSON is a key, its value and version in -o json: keys and values are
// bytes, so they are always in base64 (as etcdctl -w json has them), in
// fields that say so.
type kvJSON struct {
	Key     []byte `json:"key_base64"` // encoding/json writes []byte in base64
	Value   []byte `json:"value_base64"`
	Version string `json:"version"`
}

func toKVJSON(kv client.KeyValue) kvJSON {
	return kvJSON{Key: nonNil(kv.Key), Value: nonNil(kv.Value), Version: kv.Version}
}

// nonNil makes an empty value "" in JSON, not null.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
