//go:build !unix

package cluster

import "os"

// The signals that pause and resume a process: none here, so a local
// nemesis cannot pause nodes.
var sigStop, sigCont os.Signal
