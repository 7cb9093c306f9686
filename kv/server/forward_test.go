package server

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"connectrpc.com/connect"

	peerv1 "github.com/quorumkv/quorumkv/api/quorumkv/peer/v1"
	v1 "github.com/quorumkv/quorumkv/api/quorumkv/v1"
	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/kv"
	"github.com/quorumkv/quorumkv/kv/transport"
)

// A forwarded call's answer comes back as the unary call's would: the
// response, or the error with its code, message and metadata, as from
// the wire (withForwarding tells the target's own answers by that).
func TestForwardAnswerRoundTrip(t *testing.T) {
	put := &v1.PutResponse{Version: "7"}
	got, err := forwardResult(&peerv1.ForwardAnswer{Response: &peerv1.ForwardAnswer_Put{Put: put}})
	if err != nil || got != put {
		t.Fatalf("a put's answer: %v %v", got, err)
	}
	cerr := connect.NewError(connect.CodeNotFound, fmt.Errorf("key %q not found", "k"))
	cerr.Meta().Set(transport.NotFoundHeader, "key")
	_, err = forwardResult(kv.ForwardError(cerr))
	if !connect.IsWireError(err) || connect.CodeOf(err) != connect.CodeNotFound || transport.NotFoundWhat(err) != "key" ||
		err.(*connect.Error).Message() != `key "k" not found` {
		t.Fatalf("a NotFound's answer came back as %v (wire %t, meta %v)", err, connect.IsWireError(err), err.(*connect.Error).Meta())
	}
	// An error without a code says nothing of what happened.
	_, err = forwardResult(&peerv1.ForwardAnswer{Response: &peerv1.ForwardAnswer_Error{Error: &peerv1.RecordError{Message: "?"}}})
	if connect.CodeOf(err) != connect.CodeUnknown {
		t.Fatalf("an error without a code: %v, want Unknown", err)
	}
	if _, err = forwardResult(&peerv1.ForwardAnswer{}); err == nil || connect.IsWireError(err) {
		t.Fatalf("an empty answer: %v, want an error not from the wire (outcome unknown)", err)
	}
}

// A node serves a forwarded call as the KV call marked forwarded: it
// checks the caller's credentials itself, and a malformed call changes
// nothing. The canary that lets forwarded requests through unchecked is
// caught here too.
func TestForwardedCallChecksCaller(t *testing.T) {
	for _, c := range []struct {
		name   string
		canary AuthCanary
	}{{"checked", AuthCanary{}}, {"canary ForwardedSkipsCheck", AuthCanary{ForwardedSkipsCheck: true}}} {
		t.Run(c.name, func(t *testing.T) {
			cheapKDF(t)
			_, s := serveOneNode(t, ServerInfo{NodeName: "n1", Canary: c.canary})
			srv := httptest.NewServer(s)
			t.Cleanup(srv.Close)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			connectTo := func(user, password string) *client.Client {
				cl, err := client.New(client.Config{Endpoints: []string{srv.URL}, HTTPClient: srv.Client(), Timeout: 10 * time.Second,
					User: user, Password: password})
				if err != nil {
					t.Fatal(err)
				}
				return cl
			}
			serve := func(req any, authorization string) (any, error) {
				call, ok := forwardCall(req)
				if !ok {
					t.Fatalf("%T is not forwarded", req)
				}
				call.Authorization = authorization
				return forwardResult(s.api.serveForward(ctx, call))
			}
			put := func(value, authorization string) error {
				_, err := serve(&v1.PutRequest{Keyspace: "orders", Key: []byte("phone"), Value: []byte(value)}, authorization)
				return err
			}

			setUpAuth(t, ctx, connectTo("", "")) // ends with auth on
			root := connectTo("root", "root-pw")
			tokenOf := func(cl *client.Client) string {
				tok, _, err := cl.Token(ctx)
				if err != nil {
					t.Fatal(err)
				}
				return "Bearer " + tok
			}
			rootAuth, aliceAuth := tokenOf(root), tokenOf(connectTo("alice", "alice-pw"))
			if err := put("sold to root", rootAuth); err != nil {
				t.Fatalf("root's forwarded put: %v", err)
			}
			resp, err := serve(&v1.GetRequest{Keyspace: "orders", Key: []byte("phone")}, aliceAuth)
			if err != nil || string(resp.(*v1.GetResponse).Kv.Value) != "sold to root" {
				t.Fatalf("alice's forwarded get: %v %v", resp, err)
			}
			_, err = serve(&v1.GetRequest{Keyspace: "orders", Key: []byte("tablet")}, aliceAuth)
			if connect.CodeOf(err) != connect.CodeNotFound || transport.NotFoundWhat(err) != "key" {
				t.Fatalf("a forwarded get of a missing key: %v, want NotFound of the key", err)
			}
			ans := s.api.serveForward(ctx, &peerv1.ForwardCall{Request: &peerv1.ForwardCall_Put{}, Authorization: rootAuth})
			if _, err := forwardResult(ans); connect.CodeOf(err) != connect.CodeInvalidArgument {
				t.Fatalf("a forwarded call without its request: %v, want InvalidArgument", err)
			}

			refusedAnon := connect.CodeOf(put("sold to anon", "")) == connect.CodeUnauthenticated
			refusedAlice := connect.CodeOf(put("sold to alice", aliceAuth)) == connect.CodePermissionDenied
			kvGot, err := root.Get(ctx, "orders", []byte("phone"), client.Quorum{})
			if err != nil {
				t.Fatal(err)
			}
			checked := refusedAnon && refusedAlice && string(kvGot.Value) == "sold to root"
			switch {
			case c.canary == (AuthCanary{}) && !checked:
				t.Fatalf("forwarded puts: anonymous refused %t, alice refused %t, value now %q", refusedAnon, refusedAlice, kvGot.Value)
			case c.canary != (AuthCanary{}) && checked:
				t.Fatal("the canary went unnoticed")
			}
		})
	}
}
