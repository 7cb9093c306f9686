package client

import (
	"context"
	"errors"

	"connectrpc.com/connect"

	v1 "github.com/quorumkv/quorumkv/api/quorumkv/v1"
)

// KeyValue is a key, its value and the version that wrote it.
type KeyValue struct {
	Key, Value []byte
	Version    string
}

func fromProto(kv *v1.KeyValue) KeyValue {
	if kv == nil {
		return KeyValue{}
	}
	return KeyValue{Key: kv.GetKey(), Value: kv.GetValue(), Version: kv.GetVersion()}
}

// Put writes value under key and returns the new version.
func (c *Client) Put(ctx context.Context, keyspace string, key, value []byte, q Quorum) (string, error) {
	req := &v1.PutRequest{Keyspace: keyspace, Key: key, Value: value, Quorum: q.proto(), IdempotencyKey: c.nextKey()}
	resp, err := keyCall(ctx, c, keyspace, key, true, req, kvClient.Put)
	return resp.GetVersion(), err
}

// Get reads key. A missing key is ErrNotFound.
func (c *Client) Get(ctx context.Context, keyspace string, key []byte, q Quorum) (KeyValue, error) {
	resp, err := keyCall(ctx, c, keyspace, key, false, &v1.GetRequest{Keyspace: keyspace, Key: key, Quorum: q.proto()},
		kvClient.Get)
	return fromProto(resp.GetKv()), err
}

// Delete removes key and reports whether it existed (whether one of the
// W replicas that acknowledged held it, in eventual keyspaces).
func (c *Client) Delete(ctx context.Context, keyspace string, key []byte, q Quorum) (bool, error) {
	req := &v1.DeleteRequest{Keyspace: keyspace, Key: key, Quorum: q.proto(), IdempotencyKey: c.nextKey()}
	resp, err := keyCall(ctx, c, keyspace, key, true, req, kvClient.Delete)
	return resp.GetExisted(), err
}

// DeleteIf removes key if it is as expected (Absent is not a condition a
// delete can take); otherwise it returns ErrConditionFailed and deletes
// nothing.
func (c *Client) DeleteIf(ctx context.Context, keyspace string, key []byte, expect Expect, q Quorum) (bool, error) {
	req := &v1.DeleteRequest{Keyspace: keyspace, Key: key, Quorum: q.proto(), IdempotencyKey: c.nextKey()}
	switch {
	case expect.Absent:
		return false, errors.New("client: a delete cannot expect the key to be absent")
	case expect.Exists:
		req.Expect = &v1.DeleteRequest_ExpectExists{ExpectExists: true}
	case expect.Version != "":
		req.Expect = &v1.DeleteRequest_ExpectedVersion{ExpectedVersion: expect.Version}
	default:
		req.Expect = &v1.DeleteRequest_ExpectedValue{ExpectedValue: expect.Value}
	}
	resp, err := keyCall(ctx, c, keyspace, key, true, req, kvClient.Delete)
	return resp.GetExisted(), err
}

// Expect is the condition of a compare-and-swap: exactly one field is used.
type Expect struct {
	// Value: the key holds exactly this value.
	Value []byte
	// Absent: the key does not exist.
	Absent bool
	// Exists: the key exists, whatever it holds.
	Exists bool
	// Version: the key was last written with this version.
	Version string
}

// CompareAndSwap writes value if the key is as expected, and returns the
// new version; otherwise it returns ErrConditionFailed and writes nothing.
func (c *Client) CompareAndSwap(ctx context.Context, keyspace string, key []byte, expect Expect, value []byte) (string, error) {
	req := &v1.CompareAndSwapRequest{Keyspace: keyspace, Key: key, NewValue: value, IdempotencyKey: c.nextKey()}
	switch {
	case expect.Absent:
		req.Expect = &v1.CompareAndSwapRequest_ExpectAbsent{ExpectAbsent: true}
	case expect.Exists:
		req.Expect = &v1.CompareAndSwapRequest_ExpectExists{ExpectExists: true}
	case expect.Version != "":
		req.Expect = &v1.CompareAndSwapRequest_ExpectedVersion{ExpectedVersion: expect.Version}
	default:
		req.Expect = &v1.CompareAndSwapRequest_ExpectedValue{ExpectedValue: expect.Value}
	}
	resp, err := keyCall(ctx, c, keyspace, key, true, req, kvClient.CompareAndSwap)
	return resp.GetVersion(), err
}

// Scan returns up to limit keys (every key when limit <= 0) with the
// prefix, in key order, fetching pages of at most pageSize (0: as many as
// the limit still asks, or the server's page size without a limit) as it
// goes, each page after the last key of the one before. A page the server
// refuses as over its page limit (ResourceExhausted) is asked again at the
// server's page size, and the keys past the limit are dropped: a limit
// above the server's page limit is served in several pages.
func (c *Client) Scan(ctx context.Context, keyspace string, prefix []byte, limit, pageSize int) ([]KeyValue, error) {
	var out []KeyValue
	var after []byte
	serverPages := false // the server refused a page size: use its own
	for limit <= 0 || len(out) < limit {
		want := pageSize
		if limit > 0 && (want == 0 || limit-len(out) < want) {
			want = limit - len(out)
		}
		if serverPages {
			want = 0
		}
		resp, err := unary(ctx, c, c.kv, policy{}, &v1.ScanRequest{Keyspace: keyspace, Prefix: prefix, StartAfter: after, Limit: uint32(want)},
			kvClient.Scan)
		if err != nil && want > 0 && !serverPages && connect.CodeOf(err) == connect.CodeResourceExhausted {
			serverPages = true
			continue
		}
		if err != nil {
			return out, err
		}
		for _, kv := range resp.GetKvs() {
			if limit > 0 && len(out) == limit {
				break
			}
			out = append(out, fromProto(kv))
		}
		if !resp.GetMore() || len(resp.GetKvs()) == 0 {
			break
		}
		after = out[len(out)-1].Key
	}
	return out, nil
}
