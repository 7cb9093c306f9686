package main

import (
	"errors"
	"fmt"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// procSet holds every process the benchmark starts, so that all of them
// are ended, each by its PID, however the run ends.
type procSet struct {
	mu struct {
		sync.Mutex
		children []*child
		closed   bool
	}
}

// child is one server process: a kvd node or an etcd member.
type child struct {
	name   string
	cmd    *exec.Cmd
	log    *tailBuffer   // the last of its stdout and stderr
	exited chan struct{} // closed once the process is gone
	err    error         // cmd.Wait's result, once exited is closed
}

// start starts path with args as a child named name. The child gets a
// process group of its own, so a Ctrl-C on the terminal reaches only this
// process, which then ends its children in order; and it is sent SIGKILL
// by the kernel should this process die without doing so.
func (p *procSet) start(name, path string, args ...string) (*child, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.closed {
		return nil, errors.New("versus: shutting down")
	}
	c := &child{name: name, cmd: exec.Command(path, args...), log: newTailBuffer(tailBytes), exited: make(chan struct{})}
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { c.err = c.cmd.Wait(); close(c.exited) }()
	p.mu.children = append(p.mu.children, c)
	return c, nil
}

// pid is the child's process ID.
func (c *child) pid() int { return c.cmd.Process.Pid }

// alive returns an error naming the child and the end of its log if it
// has exited.
func (c *child) alive() error {
	select {
	case <-c.exited:
		return fmt.Errorf("%s exited (%v); the end of its log:\n%s", c.name, c.err, c.log)
	default:
		return nil
	}
}

// pidsOf returns the children's process IDs, in order.
func pidsOf(cs []*child) []int {
	out := make([]int, len(cs))
	for i, c := range cs {
		out[i] = c.pid()
	}
	return out
}

// firstDead returns alive's error for the first child that has exited.
func firstDead(cs []*child) error {
	for _, c := range cs {
		if err := c.alive(); err != nil {
			return err
		}
	}
	return nil
}

// killAll sends SIGKILL to every child still running, by its PID, and
// waits for each to be gone (for at most killWait each). No child can be
// started after it.
func (p *procSet) killAll() {
	p.mu.Lock()
	p.mu.closed = true
	children := p.mu.children
	p.mu.Unlock()
	for _, c := range children {
		select {
		case <-c.exited:
			continue
		default:
		}
		_ = c.cmd.Process.Kill() // fails only if it is already gone
	}
	for _, c := range children {
		select {
		case <-c.exited:
		case <-time.After(killWait):
		}
	}
}

const (
	// tailBytes is how much of a child's output is kept, for the error
	// that reports its death. Servers log little once started; more
	// than this is not read anyway.
	tailBytes = 32 << 10
	// killWait bounds the wait for a killed child to be reaped.
	killWait = 5 * time.Second
)

// tailBuffer keeps the last max bytes written to it (up to twice that
// between trims). It is safe for concurrent use.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func newTailBuffer(max int) *tailBuffer { return &tailBuffer{max: max} }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2*t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.buf) > t.max {
		return "...\n" + string(t.buf[len(t.buf)-t.max:])
	}
	return string(t.buf)
}
