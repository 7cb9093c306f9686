// Command kvctl is the command-line client of quorumkv.
//
// Exit codes are part of its contract (SPEC.md): 0 ok, 1 error (or a
// geometry that is unsafe for the mode asked about), 2 usage, 3 key not
// found, 4 condition failed. Errors go to standard error.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"connectrpc.com/connect"
	"github.com/urfave/cli/v2"

	"github.com/quorumkv/quorumkv/internal/version"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// usageError marks errors in how kvctl was called, which exit with 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// exitCode is an outcome that is not an error but still a non-zero exit,
// such as an unsafe geometry: the report was printed, the answer is "no".
type exitCode int

func (c exitCode) Error() string { return fmt.Sprintf("exit status %d", int(c)) }

func main() {
	os.Exit(run(os.Args, os.Stdin, os.Stdout, os.Stderr))
}

// run runs kvctl with args and returns its exit code; main is its only
// caller outside the tests.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	app := newApp(stdin, stdout, stderr)
	args, err := interspersed(app, args)
	if err == nil {
		err = app.Run(args)
	}
	var code exitCode
	var usage usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &code):
		return int(code)
	case errors.As(err, &usage):
		fmt.Fprintf(stderr, "kvctl: %v\nRun 'kvctl --help' for usage.\n", err)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "kvctl: %s\n", errorText(err))
		return exitError
	}
}

// errorText is the server's own message for errors it sent (it names the
// rule, limit or quorum at fault), or the whole error chain otherwise.
func errorText(err error) string {
	var cerr *connect.Error
	if errors.As(err, &cerr) && connect.IsWireError(cerr) {
		return cerr.Message()
	}
	return err.Error()
}

func newApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	onUsageError := func(_ *cli.Context, err error, _ bool) error { return usageError{err} }
	app := &cli.App{
		Name:    "kvctl",
		Usage:   "drive a quorumkv cluster, and check quorum geometries before you use them",
		Flags:   globalFlags(),
		Version: version.String(),
		Commands: append(kvCommands(),
			keyspaceCommand(),
			clusterCommand(),
			nodeCommand(),
			userCommand(),
			roleCommand(),
			authCommand(),
			quorumCommand(),
			benchCommand(),
			labCommand(),
			completionCommand(),
			versionCommand(),
		),
		Reader:               stdin,
		Writer:               stdout,
		ErrWriter:            stderr,
		EnableBashCompletion: true,
		Suggest:              true,
		HideHelpCommand:      true,
		OnUsageError:         onUsageError,
		// kvctl decides its exit codes in run; the library must not exit.
		ExitErrHandler: func(*cli.Context, error) {},
		// interspersed refuses unknown commands before urfave/cli runs,
		// with suggestions; this keeps the library from printing its own
		// "no help topic" lines.
		CommandNotFound: func(*cli.Context, string) {},
		Action:          missingCommand,
	}
	setUsageError(app.Commands, onUsageError)
	return app
}

// setUsageError makes every command's flag errors usage errors, and a
// command of commands called without one a usage error too.
func setUsageError(cmds []*cli.Command, f cli.OnUsageErrorFunc) {
	for _, c := range cmds {
		c.OnUsageError = f
		if len(c.Subcommands) > 0 && c.Action == nil {
			c.Action = missingCommand
		}
		setUsageError(c.Subcommands, f)
	}
}

// missingCommand is the action of the app and of the commands that have
// commands: interspersed catches their misuse first, this is the rest.
func missingCommand(c *cli.Context) error {
	var cmds []*cli.Command
	where := "kvctl"
	if c.Command != nil && len(c.Command.Subcommands) > 0 {
		cmds, where = c.Command.Subcommands, c.Command.HelpName
	} else {
		cmds = c.App.Commands
	}
	if c.NArg() > 0 {
		return unknownCommand(strings.Fields(where), cmds, c.Args().First())
	}
	return usagef("%s needs a command: %s (%s --help)", where, names(cmds), where)
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print kvctl's version, as --version does",
		Action: func(c *cli.Context) error {
			if _, err := args(c); err != nil {
				return err
			}
			cli.VersionPrinter(c)
			return nil
		},
	}
}
