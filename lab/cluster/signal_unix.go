//go:build unix

package cluster

import "syscall"

// The signals that pause and resume a process.
var (
	sigStop = syscall.SIGSTOP
	sigCont = syscall.SIGCONT
)
