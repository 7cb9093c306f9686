package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// parse runs kvd's flag handling (not the server) on args and returns the
// configuration it would serve with.
func parse(t *testing.T, args ...string) (config, error) {
	t.Helper()
	var got config
	var cfgErr error
	app := newApp(&bytes.Buffer{}, &bytes.Buffer{}, nil)
	app.Action = func(c *cli.Context) error {
		got, cfgErr = configFrom(c)
		return nil
	}
	if err := app.Run(append([]string{"kvd"}, args...)); err != nil {
		return config{}, err
	}
	return got, cfgErr
}

func TestDefaults(t *testing.T) {
	cfg, err := parse(t)
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if cfg.nodeID != host || cfg.dataDir != "./kvd-data" || cfg.listen != "127.0.0.1:7070" || cfg.advertise != "127.0.0.1:7070" ||
		cfg.gossip != "127.0.0.1:7946" || cfg.zone != "default" || cfg.weight != 1 || len(cfg.join) != 0 {
		t.Fatalf("defaults differ from SPEC.md: %+v", cfg)
	}
}

// Flags beat the environment, which beats the YAML file, which beats the
// defaults.
func TestPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "kvd.yaml")
	yaml := "node-id: from-file\nzone: file-zone\nweight: 3\njoin: 10.0.0.1:7946,10.0.0.2:7946\nlog-format: json\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KVD_ZONE", "env-zone")
	cfg, err := parse(t, "--config", file, "--weight", "5")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.nodeID != "from-file" || cfg.zone != "env-zone" || cfg.weight != 5 || !cfg.logJSON ||
		len(cfg.join) != 2 || cfg.join[1] != "10.0.0.2:7946" {
		t.Fatalf("precedence: %+v", cfg)
	}
}

func TestBadFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--weight", "0"}, "--weight 0"},
		{[]string{"--listen", "nowhere"}, "--listen"},
		{[]string{"--gossip", "1.2.3.4"}, "--gossip"},
		{[]string{"--log-level", "loud"}, "--log-level"},
		{[]string{"--log-format", "xml"}, "--log-format"},
		{[]string{"--drain-timeout", "-1s"}, "--drain-timeout"},
		{[]string{"--data-dir", ""}, "--data-dir"},
	} {
		_, err := parse(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("kvd %v: %v, want an error naming %s", c.args, err, c.want)
		}
	}
	if _, err := parse(t, "--config", filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("a missing --config file was accepted")
	}
}

func TestDemoRefusesBadCounts(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"kvd", "demo", "--nodes", "0"}, &out, &errOut, nil); code != 1 || !strings.Contains(errOut.String(), "--nodes 0") {
		t.Fatalf("demo --nodes 0: exit %d, %s", code, errOut.String())
	}
	if code := run([]string{"kvd", "demo", "--nodes", "10"}, &out, &errOut, nil); code != 1 {
		t.Fatalf("demo --nodes 10: exit %d", code)
	}
}
