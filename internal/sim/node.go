package sim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// NodeID names a node. It is the same uint64 the protocol cores use.
type NodeID uint64

// Process is the code of one node: whatever the test registers with
// AddNode. The simulator calls Receive for every message delivered to the
// node; everything else a process does (sending, timers, disk) goes through
// the *Env it was built with.
type Process interface {
	Receive(from NodeID, msg any)
}

// ProcessFunc adapts a function to Process.
type ProcessFunc func(from NodeID, msg any)

// Receive calls f(from, msg).
func (f ProcessFunc) Receive(from NodeID, msg any) { f(from, msg) }

// Stopper is implemented by processes that hold resources which must be
// released when their node crashes, such as an open Pebble DB. Stop is called
// after the node's storage has been reduced to its crash state, so what it
// writes to its Env's Disk or to a simpebble.Disk's old file system does not
// survive; its Env is already dead, so it can send nothing.
type Stopper interface {
	Stop()
}

// Storage is durable state that outlives a node's crash. Crash reduces it
// to what a real crash at this instant could leave behind; rng is the
// simulation's random source, for storage that keeps a random part of its
// unsynced writes.
type Storage interface {
	Crash(rng *rand.Rand)
}

// StartFunc builds a node's process. It is called by AddNode and again by
// every Restart, with a fresh Env; it must rebuild all state from the node's
// storage (Env.Disk or storage captured by the closure and passed to
// AddNode).
type StartFunc func(env *Env) Process

type node struct {
	id      NodeID
	start   StartFunc
	disk    *Disk
	storage []Storage // besides disk
	proc    Process
	up      bool
	// epoch counts crashes. An Env remembers the epoch it was made in; once
	// the node crashes the Env is dead: its timers never fire and its sends
	// go nowhere, even if the node has restarted since.
	epoch uint64
}

// Env is a process's handle on the simulated world, valid for one
// incarnation of its node. Everything a protocol would take from the
// operating system (clock, timers, randomness, network, disk) comes from
// here.
type Env struct {
	s     *Sim
	n     *node
	epoch uint64
	disk  *Disk
}

// ID returns the node's ID.
func (e *Env) ID() NodeID { return e.n.id }

// Now returns the virtual time.
func (e *Env) Now() time.Duration { return e.s.now }

// Rand returns the simulation's random source (see Sim.Rand).
func (e *Env) Rand() *rand.Rand { return e.s.rng }

// Disk returns the node's in-memory disk. Its contents survive restarts,
// reduced by each crash to what was synced. Each incarnation gets its own
// *Disk: writes a dead incarnation makes afterwards (from a Stop method, say)
// land on a detached copy that nothing reads.
func (e *Env) Disk() *Disk { return e.disk }

// Alive reports whether this incarnation is still running. Code that
// outlives a crash (a Stop method, a Pebble callback) can check it.
func (e *Env) Alive() bool { return e.n.up && e.n.epoch == e.epoch }

// Incarnation returns the number of crashes before this incarnation
// started: 0 for the first start.
func (e *Env) Incarnation() uint64 { return e.epoch }

// Send hands msg to the network for delivery to node to. The message must
// not be changed afterwards (it may be delivered twice). Sends from a dead
// incarnation are recorded as dropped and go nowhere.
func (e *Env) Send(to NodeID, msg any) {
	if !e.Alive() {
		e.s.record(TraceEvent{Kind: EvDrop, From: e.n.id, To: to, Msg: msg, Text: "sender crashed"})
		return
	}
	e.s.net.send(e.n.id, to, msg)
}

// After calls fn after d of virtual time unless the timer is stopped or
// this incarnation crashes first.
func (e *Env) After(d time.Duration, fn func()) *Timer {
	t := &Timer{s: e.s}
	t.ev = e.s.schedule(d, e.guard(t, fn))
	return t
}

// Every calls fn every d of virtual time (first after d) until the timer
// is stopped or this incarnation crashes. It is how a test drives a core's
// Tick. d must be positive.
func (e *Env) Every(d time.Duration, fn func()) *Timer {
	if d <= 0 {
		panic(fmt.Sprintf("sim: Every with non-positive period %v", d))
	}
	t := &Timer{s: e.s}
	var tick func()
	tick = e.guard(t, func() {
		// Re-arm before running fn, so that fn can Stop the timer.
		t.ev = e.s.schedule(d, tick)
		fn()
	})
	t.ev = e.s.schedule(d, tick)
	return t
}

// guard wraps a timer callback so that it does nothing once the
// incarnation is dead or the timer stopped.
func (e *Env) guard(t *Timer, fn func()) func() {
	return func() {
		if t.stopped || !e.Alive() {
			return
		}
		e.s.record(TraceEvent{Kind: EvTimer, From: e.n.id})
		fn()
	}
}

// Logf adds a note from this node to the trace.
func (e *Env) Logf(format string, args ...any) {
	e.s.record(TraceEvent{Kind: EvNote, Text: fmt.Sprintf("n%d: ", e.n.id) + fmt.Sprintf(format, args...)})
}

// AddNode registers node id and starts it by calling start. Besides the
// Disk every node gets, storage lists durable stores of the node (a
// simpebble.Disk) that a crash must reduce to their synced state; the
// StartFunc reaches them through its closure. AddNode panics if id is taken.
func (s *Sim) AddNode(id NodeID, start StartFunc, storage ...Storage) {
	if _, ok := s.nodes[id]; ok {
		panic(fmt.Sprintf("sim: node %d added twice", id))
	}
	n := &node{id: id, start: start, disk: NewDisk(), storage: storage}
	s.nodes[id] = n
	i, _ := slices.BinarySearch(s.order, id)
	s.order = slices.Insert(s.order, i, id)
	s.boot(n)
}

func (s *Sim) boot(n *node) {
	n.up = true
	n.proc = n.start(&Env{s: s, n: n, epoch: n.epoch, disk: n.disk})
}

func (s *Sim) mustNode(id NodeID) *node {
	n, ok := s.nodes[id]
	if !ok {
		panic(fmt.Sprintf("sim: unknown node %d", id))
	}
	return n
}

// Nodes returns the IDs of all nodes, sorted.
func (s *Sim) Nodes() []NodeID { return slices.Clone(s.order) }

// Up reports whether node id is running.
func (s *Sim) Up(id NodeID) bool { return s.mustNode(id).up }

// Process returns the running process of node id, or nil while it is
// crashed. Tests use it to inspect state for invariants.
func (s *Sim) Process(id NodeID) Process { return s.mustNode(id).proc }

// Disk returns the Disk of node id's current incarnation (a crash replaces
// it by a copy of its synced contents; see Env.Disk).
func (s *Sim) Disk(id NodeID) *Disk { return s.mustNode(id).disk }

// Crash stops node id at once, as a power cut would:
//
//  1. its incarnation dies: pending timers never fire, later sends are
//     dropped, messages that reach it while it is down are dropped;
//  2. its Disk and other storage lose what was not synced;
//  3. its process's Stop is called, if it has one. Stop runs after step 2
//     because closing a Pebble DB flushes to its (old) file system; writes
//     it makes to the node's Disk are lost. Writes to a Disk that the test
//     passed to AddNode as extra storage are not fenced this way: a Stop
//     method must not write to those.
//
// Messages it sent before crashing are already on the wire and may still
// arrive. Crashing a crashed node does nothing.
func (s *Sim) Crash(id NodeID) {
	n := s.mustNode(id)
	if !n.up {
		return
	}
	n.up = false
	n.epoch++
	s.record(TraceEvent{Kind: EvCrash, From: id})
	n.disk.Crash(s.rng)
	n.disk = n.disk.clone() // detach the dead incarnation's handle
	for _, st := range n.storage {
		st.Crash(s.rng)
	}
	if st, ok := n.proc.(Stopper); ok {
		st.Stop()
	}
	n.proc = nil
}

// Restart starts a crashed node again by calling its StartFunc with a new
// Env; the process must recover from its storage. Restart panics if the
// node is running, because restarting a live node is a bug in the test.
// Messages sent to the previous incarnation that are still in flight are
// delivered to the new one, as a datagram network would.
func (s *Sim) Restart(id NodeID) {
	n := s.mustNode(id)
	if n.up {
		panic(fmt.Sprintf("sim: restart of running node %d", id))
	}
	s.record(TraceEvent{Kind: EvRestart, From: id, Text: fmt.Sprintf("incarnation %d", n.epoch)})
	s.boot(n)
}

// Heal ends every fault: it stops all nemeses, heals all partitions and
// flapping, restores the links the nemeses degraded, and restarts every
// crashed node in ID order. Tests call it before checking liveness ("after
// the faults end, every operation eventually completes").
func (s *Sim) Heal() {
	for _, nem := range slices.Clone(s.nemeses) {
		nem.Stop() // removes itself from s.nemeses
	}
	s.net.Heal()
	for _, id := range s.order {
		if !s.nodes[id].up {
			s.Restart(id)
		}
	}
}
