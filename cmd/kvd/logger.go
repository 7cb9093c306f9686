package main

import (
	"context"
	"log/slog"
)

// nodeHandler keeps kvd's records to one "node" key: the logger carries
// node=<this node's name>, and code below it (kv/, its store and
// placement driver) logs the catalog's numeric ID of a node, this one or
// a peer, under "node" too. Such a record attribute is renamed "node-id"
// here, so a record never holds two "node" keys that a JSON decoder or a
// log query would collapse into one.
type nodeHandler struct {
	slog.Handler
}

// renamed is a, renamed if it collides with the logger's "node".
func renamed(a slog.Attr) slog.Attr {
	if a.Key == "node" {
		a.Key = "node-id"
	}
	return a
}

func (h nodeHandler) Handle(ctx context.Context, r slog.Record) error {
	collides := false
	r.Attrs(func(a slog.Attr) bool {
		collides = a.Key == "node"
		return !collides
	})
	if !collides {
		return h.Handler.Handle(ctx, r)
	}
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(renamed(a))
		return true
	})
	return h.Handler.Handle(ctx, out)
}

func (h nodeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(as))
	for i, a := range as {
		out[i] = renamed(a)
	}
	return nodeHandler{h.Handler.WithAttrs(out)}
}

// WithGroup returns the inner handler's group: attributes in a group are
// qualified by its name ("g.node") and collide with nothing.
func (h nodeHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h // slog.Handler: an empty group is no group
	}
	return h.Handler.WithGroup(name)
}
