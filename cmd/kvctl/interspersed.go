package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// interspersed checks the command path of args and moves the command's
// flags ahead of its arguments, so that "kvctl put KEY VALUE --w 2" and
// "kvctl cas KEY NEW --expect OLD" work as SPEC.md writes them: urfave/cli
// v2 stops reading flags at the first argument. A lone "-" (standard
// input) is an argument, and so is everything after "--", wherever the
// "--" is: "kvctl put k -- -5" and "kvctl put -- -k v" both work.
//
// A word that names no command where a command is due is a usage error,
// with the closest command names as suggestions; so is a missing command.
// -h or --help anywhere before "--", or "help" where a command is due,
// asks for the help of the deepest command named.
func interspersed(app *cli.App, args []string) ([]string, error) {
	if slices.Contains(args, "--generate-bash-completion") {
		return args, nil // completion: urfave/cli answers
	}
	if len(args) < 2 {
		return []string{app.Name, "--help"}, nil // plain "kvctl": its help
	}
	out := []string{args[0]}
	path := []string{app.Name} // the program and the commands named
	cmds := app.Commands
	var leaf *cli.Command
	var between []string // flags between commands
	end := slices.Index(args, "--")
	if end < 0 {
		end = len(args)
	}
	help := slices.ContainsFunc(args[1:end], isHelp)
	i := 1
	// Walk the global flags and the command path.
	for ; i < len(args); i++ {
		a := args[i]
		switch {
		case isHelp(a), a == "help":
			help = true
			continue
		case (a == "--version" || a == "-v") && leaf == nil:
			return []string{args[0], "--version"}, nil
		case strings.HasPrefix(a, "-") && a != "-" && a != "--":
			// Before the first command, the app's; between commands, a
			// global flag that the leaf command reads (the commands that
			// hold commands declare none).
			f := []string{a}
			if takesValue(app.Flags, a) && !strings.Contains(a, "=") && i+1 < len(args) {
				i++
				f = append(f, args[i])
			}
			if leaf == nil {
				out = append(out, f...)
			} else {
				between = append(between, f...)
			}
			continue
		}
		cmd := find(cmds, a)
		if cmd == nil {
			if help {
				break // the help of the deepest command named
			}
			return nil, unknownCommand(path, cmds, a)
		}
		out, path = append(out, a), append(path, a)
		leaf, cmds = cmd, cmd.Subcommands
		if len(cmds) == 0 {
			i++
			break
		}
	}
	if help {
		return append(path, "--help"), nil
	}
	if leaf == nil || len(leaf.Subcommands) > 0 {
		if i < len(args) {
			return nil, unknownCommand(path, cmds, args[i])
		}
		where := strings.Join(path, " ")
		return nil, usagef("%s needs a command: %s (%s --help)", where, names(cmds), where)
	}
	flags := between
	var positional []string
	dashes := false // "--" was given: what follows is positional
	for ; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			dashes = true
			positional = append(positional, args[i+1:]...)
			i = len(args)
		case isHelp(a):
			return append(path, "--help"), nil
		case strings.HasPrefix(a, "-") && a != "-":
			flags = append(flags, a)
			if takesValue(leaf.Flags, a) && !strings.Contains(a, "=") && i+1 < len(args) {
				i++
				flags = append(flags, args[i])
			}
		default:
			positional = append(positional, a)
		}
	}
	out = append(out, flags...)
	if dashes {
		out = append(out, "--")
	}
	return append(out, positional...), nil
}

func isHelp(a string) bool { return a == "-h" || a == "--help" || a == "-help" }

// unknownCommand is the usage error for word where one of cmds is due,
// with the closest names as suggestions.
func unknownCommand(path []string, cmds []*cli.Command, word string) error {
	where := strings.Join(path, " ")
	msg := fmt.Sprintf("unknown command %q for %q", word, where)
	if strings.HasPrefix(word, "-") {
		msg = fmt.Sprintf("%q is not a command of %q", word, where)
	}
	if s := suggest(cmds, word); len(s) > 0 {
		msg += fmt.Sprintf("; did you mean %s?", strings.Join(s, " or "))
	} else {
		msg += fmt.Sprintf("; want one of %s", names(cmds))
	}
	return usagef("%s", msg)
}

// names lists the visible commands' names.
func names(cmds []*cli.Command) string {
	var n []string
	for _, c := range cmds {
		if !c.Hidden {
			n = append(n, c.Name)
		}
	}
	return strings.Join(n, ", ")
}

// suggest returns the commands whose name starts with word, or is at most
// two edits from it (cobra's rule), quoted.
func suggest(cmds []*cli.Command, word string) []string {
	var out []string
	for _, c := range cmds {
		if c.Hidden {
			continue
		}
		for _, n := range c.Names() {
			if (len(word) >= 2 && strings.HasPrefix(n, word)) || editDistance(n, word) <= 2 {
				out = append(out, fmt.Sprintf("%q", c.Name))
				break
			}
		}
	}
	return out
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

func find(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

// takesValue reports whether the flag token (-x, --name) is a known flag
// that takes a value; unknown flags are left for urfave/cli to refuse.
func takesValue(flags []cli.Flag, token string) bool {
	name := strings.TrimLeft(token, "-")
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				_, isBool := f.(*cli.BoolFlag)
				return !isBool
			}
		}
	}
	return false
}
