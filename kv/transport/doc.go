// Package transport is the client side of the node's peer protocol: the
// pool of Connect clients of other nodes (Peers), the streams that carry
// consensus messages (PeerTransport) and eventual record calls
// (RecordStreams) between each pair of nodes, the record RPC client
// (RecordClient), and how the node's errors become Connect codes and
// metadata on the wire (ConnectCode, ToConnect).
//
// It may import kv/catalog, kv/command, kv/consensus, kv/records,
// kv/store and the generated API. It serves nothing: the Peer service's
// handlers are in package kv.
//
// Invariants: a call that was never sent fails as NotSentError (wrapped
// as a refusal, ReplicaError), so callers can tell "did not run" from
// "outcome unknown". Queues toward one peer are bounded and never grow: a
// full queue drops consensus messages (both protocols resend them) and
// fails record calls at once.
package transport
