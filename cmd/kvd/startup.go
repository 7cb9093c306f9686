package main

import (
	"io"
	"net/http"
	"sync/atomic"
)

// startupHandler serves the --listen address from the moment kvd binds
// it, before the node is built (opening the data dir, joining gossip and
// the cluster can take a minute): /livez answers 200, since the process
// is alive; /readyz and every other route answer 503 with what the node
// is doing ("joining: seeds ... unreachable"). Once the node is built,
// serve hands every request to the node's handler: the listener and the
// http.Server stay the same, so no connection is refused in between.
type startupHandler struct {
	node   atomic.Pointer[http.Handler]
	status atomic.Pointer[string]
}

func newStartupHandler() *startupHandler {
	h := &startupHandler{}
	h.setStatus("starting")
	return h
}

// setStatus says what the node is doing, for /readyz.
func (h *startupHandler) setStatus(s string) { h.status.Store(&s) }

// serve hands every request from now on to node.
func (h *startupHandler) serve(node http.Handler) { h.node.Store(&node) }

func (h *startupHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if node := h.node.Load(); node != nil {
		(*node).ServeHTTP(w, r)
		return
	}
	if r.URL.Path == "/livez" {
		io.WriteString(w, "ok\n")
		return
	}
	w.Header().Set("Retry-After", "1")
	http.Error(w, "not ready: "+*h.status.Load(), http.StatusServiceUnavailable)
}
