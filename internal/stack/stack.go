// Package stack grows a goroutine's stack ahead of a deep call.
//
// Request goroutines start with a small stack (the runtime sizes new
// stacks by the average of all goroutines, most of them small and idle),
// and a request's path is deep: HTTP/2, Connect, the interceptors, the
// node, Pebble. Each time it outgrows its stack the runtime copies the
// stack to one twice the size and fixes up every frame on it; deep in a
// Pebble read, with some forty frames, that was 10% of a node's CPU under
// linearizable gets, and connect's buffer pool another 7% (CPU profiles
// of kvctl bench, 100 clients). Grow, called once at the top of a
// request while its stack is shallow, makes one cheap copy to a stack the
// rest of the request fits in. The node calls it at the top of every
// request (kv/server) and of every eventual replica call it serves
// (from a peer, kv, or from itself, kv/eventual), whose paths down to
// Pebble are as deep.
package stack

// requestStackBytes is how much stack Grow reserves: about what a
// get's deepest path (a Pebble point read under the Connect handler)
// uses. A goroutine's stack stays that big until the GC finds it mostly
// unused; too high costs memory per request in flight, too low lets the
// deep paths grow the stack again.
const requestStackBytes = 16 << 10

// Grow grows the calling goroutine's stack to fit requestStackBytes
// more, in one copy: its own frame is that large, so the runtime grows the
// stack at its entry. On amd64 and arm64 it is written in assembly
// (grow_asm.s), whose frame is not zeroed; elsewhere in Go (grow_other.go),
// which zeroes its frame, a 16 KiB memclr on every call.
