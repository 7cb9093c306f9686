package kv

import "fmt"

// Peer messages travel in RaftMessage.message (peer.proto) as a protocol
// byte followed by the protocol's encoding (raftcodec.go, paxoscodec.go).
// The receiver decodes a message without knowing its range's protocol,
// and a range refuses a message of the other protocol.
const (
	peerProtocolRaft  byte = 'r'
	peerProtocolPaxos byte = 'p'
)

func encodePeerMessage(m PeerMessage) []byte {
	if m.Paxos != nil {
		return appendPaxosMessage([]byte{peerProtocolPaxos}, m.Paxos)
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
	}
	return PeerMessage{}, fmt.Errorf("%w: peer message of unknown protocol %#x", ErrCorrupt, b[0])
}
