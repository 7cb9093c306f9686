package main

import (
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/quorumkv/quorumkv/internal/version"
)

// Every kind of usage error exits 2 with a message on stderr naming what
// was wrong, before any request (nothing listens on the endpoint).
func TestUsageErrorsExit2(t *testing.T) {
	for _, c := range []struct {
		kind string
		args []string
		want string
	}{
		{"unknown command", []string{"foo"}, `unknown command "foo" for "kvctl"; want one of put, get`},
		{"mistyped command", []string{"clustr", "members"}, `unknown command "clustr" for "kvctl"; did you mean "cluster"?`},
		{"mistyped subcommand", []string{"keyspace", "lst"}, `unknown command "lst" for "kvctl keyspace"; did you mean "list"?`},
		{"unknown subcommand", []string{"cluster", "foo"}, `unknown command "foo" for "kvctl cluster"; want one of members, ranges`},
		{"prefix of a subcommand", []string{"cluster", "mem"}, `did you mean "members"?`},
		{"unknown subcommand after flags", []string{"-o", "json", "keyspace", "lst", "x"}, `unknown command "lst" for "kvctl keyspace"`},
		{"missing subcommand", []string{"keyspace"}, "kvctl keyspace needs a command: create, list, describe, drop"},
		{"missing command", []string{"-o", "json"}, "kvctl needs a command: put, get"},
		{"unknown flag", []string{"get", "k", "--bogus"}, "flag provided but not defined: -bogus"},
		{"unknown global flag", []string{"--bogus", "get", "k"}, "flag provided but not defined: -bogus"},
		{"unknown flag of a subcommand", []string{"keyspace", "list", "--bogus"}, "flag provided but not defined: -bogus"},
		{"missing required flag", []string{"keyspace", "create", "x", "--replicas", "3"}, "keyspace create needs --mode"},
		{"missing required flag", []string{"keyspace", "create", "x", "--mode", "raft"}, "keyspace create needs --replicas N, 1 to 24"},
		{"too few arguments", []string{"get"}, "get needs 1 argument(s): [KEY], got 0"},
		{"too many arguments", []string{"get", "a", "b"}, "get needs 1 argument(s): [KEY], got 2"},
		{"too many arguments", []string{"keyspace", "list", "x"}, "list needs 0 argument(s)"},
		{"too many arguments", []string{"version", "x"}, "version needs 0 argument(s)"},
		{"bad flag value", []string{"scan", "--limit", "many"}, `invalid value "many" for flag -limit`},
		{"bad global flag value", []string{"--timeout", "soon", "get", "k"}, `invalid value "soon" for flag -timeout`},
		{"bad flag value", []string{"get", "k", "-o", "yaml"}, `--output "yaml": want table or json`},
		{"count out of range", []string{"keyspace", "create", "x", "--mode", "raft", "--replicas", "0"}, "--replicas 0: want 1 to 24"},
		{"count out of range", []string{"keyspace", "create", "x", "--mode", "raft", "--replicas", "-1"}, "--replicas -1: want 1 to 24"},
		{"count out of range", []string{"keyspace", "create", "x", "--mode", "raft", "--replicas", "25"}, "--replicas 25: want 1 to 24"},
		{"count out of range", []string{"keyspace", "create", "x", "--mode", "raft", "--replicas", "1", "--ranges", "0"}, "--ranges 0: want 1 to 4096"},
		{"count out of range", []string{"keyspace", "create", "x", "--mode", "raft", "--replicas", "1", "--ranges", "5000"}, "--ranges 5000: want 1 to 4096"},
		{"count out of range", []string{"keyspace", "create", "x", "--mode", "eventual", "--replicas", "3", "--w", "0"}, "--w 0: want 1 to 3 (--replicas)"},
		{"count out of range", []string{"keyspace", "create", "x", "--mode", "eventual", "--replicas", "3", "--r", "0"}, "--r 0: want 1 to 3 (--replicas)"},
		{"count out of range", []string{"keyspace", "create", "x", "--mode", "eventual", "--replicas", "3", "--r", "4"}, "--r 4: want 1 to 3 (--replicas)"},
		{"count out of range", []string{"put", "k", "v", "--w", "0"}, `--w "0": want a positive count, one, quorum or all`},
		{"count out of range", []string{"get", "k", "--r", "0"}, `--r "0": want a positive count, one, quorum or all`},
		{"count out of range", []string{"del", "k", "--w", "-1"}, `--w "-1": want a positive count, one, quorum or all`},
		{"count out of range", []string{"scan", "--limit", "0"}, "--limit 0: want 1 or more (without --limit, every key)"},
		{"count out of range", []string{"scan", "--limit", "-1"}, "--limit -1: want 1 or more"},
	} {
		args := append([]string{"--endpoints", "127.0.0.1:1"}, c.args...)
		code, out, errOut := kvctl(t, args...)
		if code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("%s: kvctl %s: exit %d, stderr:\n%s\nwant exit 2 and %q", c.kind, strings.Join(args, " "), code, errOut, c.want)
		}
		if strings.Contains(out, "NAME:") {
			t.Errorf("%s: kvctl %s: help on stdout:\n%s", c.kind, strings.Join(args, " "), out)
		}
	}
}

// --help anywhere, and help where a command is due, print the help of the
// deepest command named and exit 0.
func TestHelpExits0(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--help"}, "kvctl - drive a quorumkv cluster"},
		{[]string{"-h"}, "kvctl - drive a quorumkv cluster"},
		{[]string{"help"}, "kvctl - drive a quorumkv cluster"},
		{[]string{"keyspace", "create", "x", "--help"}, "kvctl keyspace create - create a keyspace"},
		{[]string{"keyspace", "create", "--help", "x", "--mode", "raft"}, "kvctl keyspace create - create a keyspace"},
		{[]string{"keyspace", "--help"}, "kvctl keyspace - create, list, describe and drop keyspaces"},
		{[]string{"help", "keyspace"}, "kvctl keyspace - create, list, describe and drop keyspaces"},
		{[]string{"keyspace", "lst", "--help"}, "kvctl keyspace - create, list, describe and drop keyspaces"},
		{[]string{"-o", "json", "get", "k", "-h"}, "kvctl get - read a key"},
		{[]string{"put", "k", "v", "--w", "2", "--help"}, "kvctl put - write a value"},
	} {
		code, out, errOut := kvctl(t, c.args...)
		if code != 0 || !strings.Contains(out, c.want) || strings.Contains(errOut, "unknown") {
			t.Errorf("kvctl %s: exit %d, stdout:\n%s\nstderr:\n%s\nwant exit 0 and %q", strings.Join(c.args, " "), code, out, errOut, c.want)
		}
	}
}

// Plain kvctl prints its help.
func TestNoArgumentsPrintsHelp(t *testing.T) {
	if code, out, _ := kvctl(t); code != 0 || !strings.Contains(out, "COMMANDS:") {
		t.Errorf("kvctl: exit %d, %s", code, out)
	}
}

// Required flags are checked by the commands, which name them: urfave/cli's
// own check exits 1 and prints the wrong help.
func TestNoFlagIsRequiredByTheLibrary(t *testing.T) {
	app := newApp(strings.NewReader(""), nil, nil)
	var walk func(path string, cmds []*cli.Command)
	walk = func(path string, cmds []*cli.Command) {
		for _, c := range cmds {
			for _, f := range c.Flags {
				if r, ok := f.(cli.RequiredFlag); ok && r.IsRequired() {
					t.Errorf("%s %s: flag %s has Required set", path, c.Name, f.Names()[0])
				}
			}
			walk(path+" "+c.Name, c.Subcommands)
		}
	}
	walk("kvctl", app.Commands)
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"-v"}, {"version"}, {"-o", "json", "--version"}} {
		code, out, errOut := kvctl(t, args...)
		if code != 0 || out != "kvctl version "+version.String()+"\n" {
			t.Errorf("kvctl %s: exit %d, %q, %s; want %q", strings.Join(args, " "), code, out, errOut, "kvctl version "+version.String())
		}
	}
}
