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

	"connectrpc.com/connect"
	"github.com/urfave/cli/v2"
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
	err := app.Run(interspersed(app, args))
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
		Name:  "kvctl",
		Usage: "drive a quorumkv cluster, and check quorum geometries before you use them",
		Flags: globalFlags(),
		Commands: append(kvCommands(),
			keyspaceCommand(),
			clusterCommand(),
			nodeCommand(),
			userCommand(),
			roleCommand(),
			authCommand(),
			quorumCommand(),
			benchCommand(),
			completionCommand(),
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
		CommandNotFound: func(c *cli.Context, name string) {
			fmt.Fprintf(c.App.ErrWriter, "kvctl: unknown command %q\n", name)
		},
	}
	setUsageError(app.Commands, onUsageError)
	return app
}

// setUsageError makes every command's flag errors usage errors.
func setUsageError(cmds []*cli.Command, f cli.OnUsageErrorFunc) {
	for _, c := range cmds {
		c.OnUsageError = f
		setUsageError(c.Subcommands, f)
	}
}
