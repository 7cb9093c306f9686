// Package api holds quorumkv's protobuf API, package quorumkv.v1: the KV
// and Admin services (SPEC.md "API"). The generated Go code is committed,
// so users need no code generation tools; after changing a .proto file,
// regenerate it with
//
//	go generate ./api
//
// which runs buf and the protoc-gen-go and protoc-gen-connect-go plugins at
// pinned versions from the Go module proxy.
package api

//go:generate go run github.com/bufbuild/buf/cmd/buf@v1.75.0 lint
//go:generate go run github.com/bufbuild/buf/cmd/buf@v1.75.0 generate
