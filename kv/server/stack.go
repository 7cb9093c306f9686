package server

// Request goroutines start with a small stack (the runtime sizes new
// stacks by the average of all goroutines, most of them small and idle),
// and a request's path is deep: HTTP/2, Connect, the interceptors, the
// node, Pebble. Each time it outgrows its stack the runtime copies the
// stack to one twice the size and fixes up every frame on it; deep in a
// Pebble read, with some forty frames, that was 10% of a node's CPU under
// linearizable gets, and connect's buffer pool another 7% (CPU profiles
// of kvctl bench, 100 clients). growStack, called once at the top of a
// request while its stack is shallow, makes one cheap copy to a stack the
// rest of the request fits in.

// requestStackBytes is how much stack growStack reserves: about what a
// get's deepest path (a Pebble point read under the Connect handler)
// uses. A goroutine's stack stays that big until the GC finds it mostly
// unused; too high costs memory per request in flight, too low lets the
// deep paths grow the stack again.
const requestStackBytes = 16 << 10

// growStack grows the calling goroutine's stack to fit requestStackBytes
// more: its own frame is that large, so the runtime grows the stack at its
// entry, in one copy.
//
//go:noinline
func growStack() {
	var frame [requestStackBytes]byte
	touchFrame(frame[:])
}

// touchFrame keeps growStack's frame from being optimized away; the slice
// does not escape, so the frame stays on the stack.
//
//go:noinline
func touchFrame(b []byte) { b[len(b)-1] = 1 }
