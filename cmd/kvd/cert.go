package main

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/quorumkv/quorumkv/certs"
)

// kvd cert: the certificates of a secure cluster, written with no outside
// tool (package certs; CockroachDB's cockroach cert is the model).
func certCommand(stdout io.Writer) *cli.Command {
	dirFlag := func() cli.Flag {
		return &cli.StringFlag{Name: "certs-dir", Usage: "the certificates directory", Value: "certs", EnvVars: []string{"KVD_CERTS_DIR"}}
	}
	// Every flag of a command that creates: fresh ones for each command.
	createFlags := func() []cli.Flag {
		return []cli.Flag{dirFlag(),
			&cli.StringFlag{Name: "ca-key", Usage: "the CA's private key (keep it off the nodes: only these commands need it)", Required: true},
			&cli.DurationFlag{Name: "lifetime", Usage: "how long the certificate is valid (default 87600h for a CA, 43800h otherwise)"},
			&cli.BoolFlag{Name: "overwrite", Usage: "replace files that exist"},
		}
	}
	opts := func(c *cli.Context) certs.Options {
		return certs.Options{Lifetime: c.Duration("lifetime"), Overwrite: c.Bool("overwrite")}
	}
	wrote := func(_ *cli.Context, files ...string) {
		for _, f := range files {
			fmt.Fprintf(stdout, "wrote %s\n", f)
		}
	}
	return &cli.Command{
		Name:  "cert",
		Usage: "create the certificates of a secure cluster: a CA, one per node, one per user",
		Description: `The files of a cluster's own CA, ECDSA P-256: the CA certificate (ca.crt;
10 years), a node's certificate and key (node.crt, node.key; 5 years) made
for the names and addresses clients and peers dial it at, and a user's
client certificate (client.USER.crt, client.USER.key; 5 years). The CA key
signs them all: keep it apart, off the nodes. Keys are written with mode
0600; nothing is overwritten without --overwrite. Flags come before the
hosts and the user.

  kvd cert create-ca --certs-dir certs --ca-key safe/ca.key
  kvd cert create-node --certs-dir certs --ca-key safe/ca.key 127.0.0.1 localhost node1.example.com
  kvd cert create-client --certs-dir certs --ca-key safe/ca.key root
  kvd cert create-gossip-key --certs-dir certs
  kvd cert list --certs-dir certs`,
		Subcommands: []*cli.Command{
			{
				Name: "create-ca", Usage: "write a new CA: ca.crt into --certs-dir, its key to --ca-key",
				Flags: createFlags(),
				Action: func(c *cli.Context) error {
					if c.NArg() > 0 {
						return fmt.Errorf("create-ca takes no arguments, got %q", c.Args().Slice())
					}
					if err := certs.CreateCA(c.String("certs-dir"), c.String("ca-key"), opts(c)); err != nil {
						return err
					}
					wrote(c, filepath.Join(c.String("certs-dir"), certs.CAFile), c.String("ca-key"))
					return nil
				},
			},
			{
				Name: "create-node", Usage: "write this node's certificate (node.crt, node.key) for HOST... (names and addresses it is dialed at)",
				ArgsUsage: "HOST...",
				Flags:     createFlags(),
				Action: func(c *cli.Context) error {
					if err := certs.CreateNode(c.String("certs-dir"), c.String("ca-key"), c.Args().Slice(), opts(c)); err != nil {
						return err
					}
					wrote(c, filepath.Join(c.String("certs-dir"), certs.NodeFile), filepath.Join(c.String("certs-dir"), certs.NodeKeyFile))
					return nil
				},
			},
			{
				Name: "create-client", Usage: "write USER's client certificate (client.USER.crt, client.USER.key)",
				ArgsUsage: "USER",
				Flags:     createFlags(),
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return fmt.Errorf("create-client takes one user name, got %d arguments", c.NArg())
					}
					if err := certs.CreateClient(c.String("certs-dir"), c.String("ca-key"), c.Args().First(), opts(c)); err != nil {
						return err
					}
					crt, key := certs.ClientFiles(c.Args().First())
					wrote(c, filepath.Join(c.String("certs-dir"), crt), filepath.Join(c.String("certs-dir"), key))
					return nil
				},
			},
			{
				Name: "create-gossip-key", Usage: "write a key that encrypts gossip (gossip.key) into --certs-dir; copy it to every node's",
				Flags: []cli.Flag{dirFlag(), &cli.BoolFlag{Name: "overwrite", Usage: "replace the file if it exists"}},
				Action: func(c *cli.Context) error {
					if c.NArg() > 0 {
						return fmt.Errorf("create-gossip-key takes no arguments, got %q", c.Args().Slice())
					}
					if err := certs.CreateGossipKey(c.String("certs-dir"), certs.Options{Overwrite: c.Bool("overwrite")}); err != nil {
						return err
					}
					wrote(c, filepath.Join(c.String("certs-dir"), certs.GossipKeyFile))
					return nil
				},
			},
			{
				Name: "create-cluster-secret", Usage: "write a cluster secret to FILE for a cluster without TLS (kvd --insecure --cluster-secret-file FILE); copy it to every node",
				ArgsUsage: "FILE",
				Flags:     []cli.Flag{&cli.BoolFlag{Name: "overwrite", Usage: "replace the file if it exists"}},
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return fmt.Errorf("create-cluster-secret takes one argument, the file to write, got %q", c.Args().Slice())
					}
					if err := certs.CreateClusterSecret(c.Args().First(), certs.Options{Overwrite: c.Bool("overwrite")}); err != nil {
						return err
					}
					wrote(c, c.Args().First())
					return nil
				},
			},
			{
				Name: "list", Usage: "show the certificates in --certs-dir: who they name, for which hosts, until when",
				Flags: []cli.Flag{dirFlag()},
				Action: func(c *cli.Context) error {
					return listCerts(stdout, c.String("certs-dir"))
				},
			},
		},
	}
}

// listCerts prints every certificate file of dir.
func listCerts(w io.Writer, dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FILE\tNAME\tHOSTS\tVALID UNTIL")
	found := false
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".crt") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return err
		}
		block, _ := pem.Decode(b)
		if block == nil {
			return fmt.Errorf("%s holds no PEM certificate", filepath.Join(dir, e.Name()))
		}
		crt, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return fmt.Errorf("%s: %w", filepath.Join(dir, e.Name()), err)
		}
		hosts := slices.Clone(crt.DNSNames)
		for _, ip := range crt.IPAddresses {
			hosts = append(hosts, ip.String())
		}
		until := crt.NotAfter.UTC().Format(time.RFC3339)
		if time.Now().After(crt.NotAfter) {
			until += " (expired)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Name(), crt.Subject.CommonName, strings.Join(hosts, ","), until)
		found = true
	}
	if !found {
		return errors.New("no certificate (*.crt) in " + dir)
	}
	return tw.Flush()
}
