// Package metrics defines the node's Prometheus metrics (SPEC.md
// "Metrics"): one Metrics per node, registered once, shared by the store,
// the eventual coordinator and the server.
//
// It imports kv/consensus (the kinds of range faults it counts) and the
// Prometheus client.
//
// Invariants: metric names and labels are a contract with dashboards and
// scripts; they change only with SPEC.md.
package metrics
