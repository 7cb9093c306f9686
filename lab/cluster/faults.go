package cluster

import (
	"errors"
	"fmt"
	"slices"

	"github.com/quorumkv/quorumkv/lab"
)

// faults hurts nodes through a nemesis, marks each action on the run's
// timeline, and remembers what heal must undo. Only the goroutine that
// runs the fault plan uses it.
type faults struct {
	run    *run
	nem    lab.Nemesis
	killed []string
	paused []string
}

// kill stops node at once (SIGKILL).
func (f *faults) kill(node string) error {
	at := f.run.now()
	if err := f.nem.Kill(node); err != nil {
		return fmt.Errorf("lab/cluster: kill %s: %w", node, err)
	}
	f.killed = append(f.killed, node)
	f.run.markAt(at, lab.Crash, node, "killed")
	f.run.logf("killed %s", node)
	return nil
}

// restart starts a killed node again; it returns once the node is ready.
func (f *faults) restart(node string) error {
	at := f.run.now()
	if err := f.nem.Restart(node); err != nil {
		return fmt.Errorf("lab/cluster: restart %s: %w", node, err)
	}
	f.killed = slices.DeleteFunc(f.killed, func(n string) bool { return n == node })
	f.run.markAt(at, lab.Restart, node, fmt.Sprintf("restarted (ready after %s)", seconds(f.run.now()-at)))
	f.run.logf("restarted %s", node)
	return nil
}

// pause freezes node (SIGSTOP).
func (f *faults) pause(node string) error {
	at := f.run.now()
	if err := f.nem.Pause(node); err != nil {
		return fmt.Errorf("lab/cluster: pause %s: %w", node, err)
	}
	f.paused = append(f.paused, node)
	f.run.markAt(at, lab.Pause, node, "paused")
	f.run.logf("paused %s", node)
	return nil
}

// resume thaws a paused node (SIGCONT).
func (f *faults) resume(node string) error {
	at := f.run.now()
	if err := f.nem.Resume(node); err != nil {
		return fmt.Errorf("lab/cluster: resume %s: %w", node, err)
	}
	f.paused = slices.DeleteFunc(f.paused, func(n string) bool { return n == node })
	f.run.markAt(at, lab.Resume, node, "resumed")
	f.run.logf("resumed %s", node)
	return nil
}

// heal resumes every paused node and restarts every killed one.
func (f *faults) heal() error {
	var errs []error
	for _, n := range slices.Clone(f.paused) {
		errs = append(errs, f.resume(n))
	}
	for _, n := range slices.Clone(f.killed) {
		errs = append(errs, f.restart(n))
	}
	return errors.Join(errs...)
}
