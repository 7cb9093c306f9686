package consensus

import (
	"fmt"

	"github.com/quorumkv/quorumkv/kv/internal/codec"
)

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

func EncodePeerMessage(m PeerMessage) []byte {
	if m.Paxos != nil {
		return appendPaxosMessage([]byte{peerProtocolPaxos}, m.Paxos)
	}
	if c := m.Control; c != nil {
		e := codec.Enc{Buf: []byte{peerProtocolControl, byte(c.Kind)}}
		e.Uint(c.From)
		e.Uint(c.To)
		e.Uint(c.Term)
		e.Uint(c.Commit)
		e.Bool(c.Draining)
		return e.Buf
	}
	return appendRaftMessage([]byte{peerProtocolRaft}, m.Raft)
}

// DecodePeerMessage decodes b. The message's byte slices alias b.
func DecodePeerMessage(b []byte) (PeerMessage, error) {
	if len(b) == 0 {
		return PeerMessage{}, fmt.Errorf("%w: empty peer message", codec.ErrCorrupt)
	}
	switch b[0] {
	case peerProtocolRaft:
		m, err := decodeRaftMessage(b[1:])
		return PeerMessage{Raft: &m}, err
	case peerProtocolPaxos:
		m, err := decodePaxosMessage(b[1:])
		return PeerMessage{Paxos: &m}, err
	case peerProtocolControl:
		d := codec.Dec{Buf: b[1:]}
		c := &ControlMessage{Kind: ControlKind(d.Byte())}
		c.From, c.To, c.Term, c.Commit, c.Draining = d.Uint(), d.Uint(), d.Uint(), d.Uint(), d.Bool()
		if c.Kind < ControlBeacon || c.Kind > ControlSubsumed {
			d.Fail("control kind")
		}
		return PeerMessage{Control: c}, d.Done()
	}
	return PeerMessage{}, fmt.Errorf("%w: peer message of unknown protocol %#x", codec.ErrCorrupt, b[0])
}
