package main

import (
	"encoding/json"
	"io"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"
)

// format is how kvctl prints results.
type format string

const (
	formatTable format = "table" // aligned, for people at a terminal
	formatPlain format = "plain" // values only, for pipes and scripts
	formatJSON  format = "json"
)

// outputFlag is --output. It is global and repeated on every command that
// prints, because urfave/cli only parses a flag where it is declared and
// people write "kvctl quorum check ... -o json".
func outputFlag() cli.Flag {
	return &cli.StringFlag{
		Name:    "output",
		Aliases: []string{"o"},
		Usage:   "output format: table or json (default: table on a terminal, plain text when piped)" + envUsage("output"),
	}
}

// outputFormat reads --output, defaulting to table on a terminal and plain
// text otherwise, as SPEC.md says.
func outputFormat(c *cli.Context) (format, error) {
	switch o := lookupString(c, "output"); o {
	case "table":
		return formatTable, nil
	case "json":
		return formatJSON, nil
	case "":
		if isTerminal(c.App.Writer) {
			return formatTable, nil
		}
		return formatPlain, nil
	default:
		return "", usagef("--output %q: want table or json", o)
	}
}

// isTerminal reports whether f, an output or an input, is a terminal:
// output that a person reads, or input a person can answer a question on.
func isTerminal(f any) bool {
	fd, ok := f.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(fd.Fd()))
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
