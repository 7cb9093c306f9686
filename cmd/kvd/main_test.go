package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/eventual"
	"github.com/quorumkv/quorumkv/kv/records"
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

// The eventual keyspaces' background work defaults to kv's defaults, and
// reads its flags, environment variables and YAML keys like the others.
func TestEventualFlags(t *testing.T) {
	cfg, err := parse(t)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.antiEntropyInterval != eventual.DefaultAntiEntropyInterval || cfg.hintWindow != records.DefaultMaxHintAge {
		t.Fatalf("defaults: anti-entropy interval %v, hint window %v; want %v, %v",
			cfg.antiEntropyInterval, cfg.hintWindow, eventual.DefaultAntiEntropyInterval, records.DefaultMaxHintAge)
	}
	file := filepath.Join(t.TempDir(), "kvd.yaml")
	if err := os.WriteFile(file, []byte("anti-entropy-interval: 1m\nhint-window: 30m\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		env            map[string]string
		args           []string
		interval, hint time.Duration
	}{
		{nil, nil, time.Minute, 30 * time.Minute},
		{map[string]string{"KVD_HINT_WINDOW": "45m"}, nil, time.Minute, 45 * time.Minute},
		{map[string]string{"KVD_ANTI_ENTROPY_INTERVAL": "2s"}, []string{"--anti-entropy-interval", "500ms", "--hint-window", "1s"},
			500 * time.Millisecond, time.Second},
	} {
		t.Run(fmt.Sprint(c.env, c.args), func(t *testing.T) {
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			cfg, err := parse(t, append([]string{"--config", file}, c.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.antiEntropyInterval != c.interval || cfg.hintWindow != c.hint {
				t.Fatalf("anti-entropy interval %v, hint window %v; want %v, %v", cfg.antiEntropyInterval, cfg.hintWindow, c.interval, c.hint)
			}
		})
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

// --range-max-bytes takes sizes with units, up to 8 GiB: a split is not
// bounded by a batch any more (kv/store/split.go).
func TestRangeMaxBytes(t *testing.T) {
	for arg, want := range map[string]int64{"": 64 << 20, "512MiB": 512 << 20, "4GiB": 4 << 30, "8GiB": 8 << 30, "65536": 64 << 10} {
		args := []string{}
		if arg != "" {
			args = append(args, "--range-max-bytes", arg)
		}
		cfg, err := parse(t, args...)
		if err != nil || cfg.rangeMaxBytes != want {
			t.Errorf("--range-max-bytes %q: %d (%v), want %d", arg, cfg.rangeMaxBytes, err, want)
		}
	}
}

// --range-merge-bytes: empty is a quarter of --range-max-bytes (0 in
// StoreConfig), 0 turns merges off (-1), and more than half of
// --range-max-bytes is refused, naming the rule.
func TestRangeMergeBytes(t *testing.T) {
	for _, c := range []struct {
		args []string
		want int64
		err  string
	}{
		{nil, 0, ""},
		{[]string{"--range-merge-bytes", "0"}, -1, ""},
		{[]string{"--range-merge-bytes", "8MiB"}, 8 << 20, ""},
		{[]string{"--range-merge-bytes", "32MiB"}, 32 << 20, ""},
		{[]string{"--range-merge-bytes", "33MiB"}, 0, "half of --range-max-bytes"},
		{[]string{"--range-max-bytes", "1GiB", "--range-merge-bytes", "512MiB"}, 512 << 20, ""},
		{[]string{"--range-merge-bytes", "lots"}, 0, "--range-merge-bytes"},
	} {
		cfg, err := parse(t, c.args...)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%v: %v, want an error naming %q", c.args, err, c.err)
		case c.err == "" && (err != nil || cfg.mergeBelowBytes != c.want):
			t.Errorf("%v: %d (%v), want %d", c.args, cfg.mergeBelowBytes, err, c.want)
		}
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
		{[]string{"--anti-entropy-interval", "0s"}, "--anti-entropy-interval 0s"},
		{[]string{"--anti-entropy-interval", "-5s"}, "--anti-entropy-interval -5s"},
		{[]string{"--hint-window", "0s"}, "--hint-window 0s"},
		{[]string{"--hint-window", "-1h"}, "--hint-window -1h0m0s"},
		{[]string{"--dead-after", "0s"}, "--dead-after 0s"},
		{[]string{"--data-dir", ""}, "--data-dir"},
		{[]string{"--range-max-bytes", "32KiB"}, "--range-max-bytes"},
		{[]string{"--range-max-bytes", "9GiB"}, "--range-max-bytes"},
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

// --enable-pprof adds /debug/pprof/ and leaves every other route to the
// node's handler.
func TestEnablePprof(t *testing.T) {
	if cfg, err := parse(t); err != nil || cfg.enablePprof {
		t.Fatalf("default: enablePprof %v, %v", cfg.enablePprof, err)
	}
	if cfg, err := parse(t, "--enable-pprof"); err != nil || !cfg.enablePprof {
		t.Fatalf("--enable-pprof: enablePprof %v, %v", cfg.enablePprof, err)
	}
	node := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "node") })
	h := withPprof(node)
	for path, want := range map[string]string{"/debug/pprof/": "goroutine", "/metrics": "node", "/": "node"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("GET %s: %d %.80q, want %q in it", path, rec.Code, rec.Body.String(), want)
		}
	}
}

// The request limits are flags (SPEC.md "Limits": each configurable),
// bounded, and a request limit too small for the largest put is refused,
// naming the flags.
func TestLimitFlags(t *testing.T) {
	cfg, err := parse(t)
	if err != nil || cfg.limits != catalog.DefaultLimits() {
		t.Fatalf("defaults: %+v (%v), want SPEC.md's %+v", cfg.limits, err, catalog.DefaultLimits())
	}
	cfg, err = parse(t, "--max-key-bytes", "1KiB", "--max-value-bytes", "8MiB", "--max-request-bytes", "9MiB", "--max-scan-keys", "500")
	if want := (catalog.Limits{MaxKeyBytes: 1 << 10, MaxValueBytes: 8 << 20, MaxRequestBytes: 9 << 20, MaxScanKeys: 500}); err != nil || cfg.limits != want {
		t.Errorf("set: %+v (%v), want %+v", cfg.limits, err, want)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--max-value-bytes", "65MiB"}, "--max-value-bytes"},
		{[]string{"--max-key-bytes", "0"}, "--max-key-bytes"},
		{[]string{"--max-scan-keys", "0"}, "--max-scan-keys"},
		{[]string{"--max-value-bytes", "4MiB"}, "--max-request-bytes 2097152 is below"},
	} {
		if _, err := parse(t, c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error naming %q", c.args, err, c.want)
		}
	}
}
