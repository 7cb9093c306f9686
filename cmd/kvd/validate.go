package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/quorumkv/quorumkv/quorum"
)

// Every flag is checked before kvd touches the disk: a typo must not leave
// a data dir behind, let alone a freshly founded cluster in it.

// maxNameLen bounds --node-id and --zone: both travel in every gossip
// message's metadata, which memberlist caps at 512 bytes with the
// addresses, the UUID and the cluster ID.
const maxNameLen = 63

// checkName checks a --node-id or --zone: 1 to maxNameLen letters, digits,
// '_', '-' and '.', the characters kvctl quorum check's node lists
// (id@zone:weight) take.
func checkName(flag, s string) error {
	ok := s != "" && len(s) <= maxNameLen
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("--%s %q: want 1 to %d letters, digits, '_', '-' or '.'", flag, s, maxNameLen)
	}
	return nil
}

// addrRule is what an address flag accepts.
type addrRule struct {
	// portZero allows port 0, for which the system picks a free port
	// (--listen and --gossip, as tests and kvd demo use them).
	portZero bool
	// anyHost allows an empty host and the unspecified addresses 0.0.0.0
	// and [::] (every interface): addresses to bind, not to dial.
	anyHost bool
}

// checkAddr checks that addr is host:port with a port from 1 (0 where
// the rule allows it) to 65535.
func checkAddr(flag, addr string, rule addrRule) error {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--%s %q: want host:port: %v", flag, addr, err)
	}
	low := 1
	if rule.portZero {
		low = 0
	}
	if port, err := strconv.Atoi(p); err != nil || port < low || port > 65535 {
		return fmt.Errorf("--%s %q: the port must be a number from %d to 65535", flag, addr, low)
	}
	if ip := net.ParseIP(host); !rule.anyHost && (host == "" || ip != nil && ip.IsUnspecified()) {
		return fmt.Errorf("--%s %q: other nodes must be able to dial it: give a host name or an address other than 0.0.0.0 or [::]", flag, addr)
	}
	return nil
}

// checkAddrs checks the address flags of cfg: --listen, --advertise (when
// given), --gossip and every --join seed.
func checkAddrs(c *cli.Context, cfg config) error {
	bind := addrRule{portZero: true, anyHost: true}
	if err := checkAddr("listen", cfg.listen, bind); err != nil {
		return err
	}
	// memberlist needs an address to bind to: "" is not "every interface" there.
	if host, _, err := net.SplitHostPort(cfg.gossip); err == nil && host == "" {
		return fmt.Errorf("--gossip %q: give the host too (0.0.0.0 for every interface)", cfg.gossip)
	}
	if err := checkAddr("gossip", cfg.gossip, bind); err != nil {
		return err
	}
	if c.String("advertise") != "" {
		if err := checkAddr("advertise", cfg.advertise, addrRule{}); err != nil {
			return err
		}
	}
	for _, seed := range cfg.join {
		if err := checkAddr("join", seed, addrRule{}); err != nil {
			return err
		}
	}
	return nil
}

// checkNames checks --node-id, --zone and --weight.
func checkNames(cfg config) error {
	if cfg.nodeID == "" {
		return fmt.Errorf("--node-id is empty and the host has no name")
	}
	if err := checkName("node-id", cfg.nodeID); err != nil {
		return err
	}
	if err := checkName("zone", cfg.zone); err != nil {
		return err
	}
	if cfg.weight < 1 || cfg.weight > quorum.MaxWeight {
		return fmt.Errorf("--weight %d: want 1 to %d", cfg.weight, quorum.MaxWeight)
	}
	return nil
}

// checkDataDir refuses a --data-dir that exists and is not a directory,
// without creating anything.
func checkDataDir(dir string) error {
	switch fi, err := os.Stat(dir); {
	case err == nil && !fi.IsDir():
		return fmt.Errorf("--data-dir %s is a file, not a directory", dir)
	case err != nil && !os.IsNotExist(err):
		return fmt.Errorf("--data-dir %s: %w", dir, err)
	}
	return nil
}

// versionCommand is kvd version, the same as kvd --version.
func versionCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version and exit (as --version)",
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("kvd version takes no arguments, got %q", strings.Join(c.Args().Slice(), " "))
			}
			cli.VersionPrinter(c)
			return nil
		},
	}
}
