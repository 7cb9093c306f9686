// Package certs writes and loads the certificates of a secure quorumkv
// cluster, so that it needs no outside tool (CockroachDB's `cockroach
// cert` is the model):
//
//   - a cluster CA (ca.crt; its key ca.key belongs on the operator's
//     machine, not on the nodes), ECDSA P-256, valid 10 years;
//   - one certificate per node (node.crt, node.key), for the names and
//     addresses clients and peers dial it at, valid 5 years, usable as a
//     server and as a client: a node dials its peers with it, and peers
//     accept only certificates whose Common Name is "node" (RoleNode);
//   - one certificate per user (client.USER.crt, client.USER.key), whose
//     Common Name is the user's name, valid 5 years.
//
// Keys are written with mode 0600, and nothing is overwritten unless
// asked. Bundle loads a certificates directory and reloads each file when
// it changes on disk, so certificates are rotated without a restart.
package certs
