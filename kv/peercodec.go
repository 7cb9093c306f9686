package kv

import "fmt"

// Peer messages travel in RaftMessage.message (peer.proto) as a protocol
// byte followed by the protocol's encoding (raftcodec.go, paxoscodec.go).
// The receiver decodes a message without knowing its range's protocol,
// and a range refuses a message of the other protocol.
const (
	peerProtocolRaft  byte = 'r'
	peerProtocolPaxos byte = 'p'
	// peerProtocolControl marks store-to-store control messages (beacons,
	// quiescence), sent with range 0.
	peerProtocolControl byte = 'c'
)

func encodePeerMessage(m PeerMessage) []byte {
	if m.Paxos != nil {
		return appendPaxosMessage([]byte{peerProtocolPaxos}, m.Paxos)
	}
	if c := m.Control; c != nil {
		e := enc{b: []byte{peerProtocolControl, byte(c.Kind)}}
		e.uint(c.From)
		e.uint(c.To)
		e.uint(c.Term)
		e.uint(c.Commit)
		return e.b
	}
	return appendRaftMessage([]byte{peerProtocolRaft}, m.Raft)
}

// decodePeerMessage decodes b. The message's byte slices alias b.
func decodePeerMessage(b []byte) (PeerMessage, error) {
	if len(b) == 0 {
		return PeerMessage{}, fmt.Errorf("%w: empty peer message", ErrCorrupt)
	}
	switch b[0] {
	case peerProtocolRaft:
		m, err := decodeRaftMessage(b[1:])
		return PeerMessage{Raft: &m}, err
	case peerProtocolPaxos:
		m, err := decodePaxosMessage(b[1:])
		return PeerMessage{Paxos: &m}, err
	case peerProtocolControl:
		d := dec{b: b[1:]}
		c := &ControlMessage{Kind: ControlKind(d.byte())}
		c.From, c.To, c.Term, c.Commit = d.uint(), d.uint(), d.uint(), d.uint()
		if c.Kind != ControlBeacon && c.Kind != ControlQuiesce {
			d.fail("control kind")
		}
		return PeerMessage{Control: c}, d.done()
	}
	return PeerMessage{}, fmt.Errorf("%w: peer message of unknown protocol %#x", ErrCorrupt, b[0])
}
