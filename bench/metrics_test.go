package bench

import (
	"strings"
	"testing"
)

func TestParseWRN(t *testing.T) {
	text := `# HELP quorumkv_wrn_reads_total Reads of eventual keyspaces answered, by keyspace.
# TYPE quorumkv_wrn_reads_total counter
quorumkv_wrn_reads_total{keyspace="ev"} 1234
quorumkv_wrn_reads_total{keyspace="ev2"} 99
quorumkv_wrn_reads_total_other{keyspace="ev"} 5
quorumkv_wrn_stale_reads_total{keyspace="ev"} 7 1700000000000
quorumkv_wrn_stale_reads_total{node="n1",keyspace="ev"} 3
quorumkv_wrn_stale_reads_total{keyspace="e\"v"} 1000
quorumkv_wrn_read_repairs_total{result="ok"} 12
`
	c, err := parseWRN(strings.NewReader(text), "ev")
	if err != nil {
		t.Fatal(err)
	}
	if c != (wrnCounters{reads: 1234, stale: 10}) {
		t.Fatalf("got %+v, want 1234 reads and 7+3 stale", c)
	}
	if c, err := parseWRN(strings.NewReader(text), `e"v`); err != nil || c != (wrnCounters{stale: 1000}) {
		t.Fatalf("escaped label: %+v, %v", c, err)
	}
	// No series yet: zero, not an error.
	if c, err := parseWRN(strings.NewReader("quorumkv_build_info 1\n"), "ev"); err != nil || c != (wrnCounters{}) {
		t.Fatalf("no series: %+v, %v", c, err)
	}
	for _, bad := range []string{
		`quorumkv_wrn_reads_total{keyspace="ev"} lots`,
		`quorumkv_wrn_reads_total{keyspace="ev} 1`,
		`quorumkv_wrn_reads_total{keyspace} 1`,
		`quorumkv_wrn_reads_total{keyspace="ev"}`,
	} {
		if _, err := parseWRN(strings.NewReader(bad), "ev"); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestServerDelta(t *testing.T) {
	if got := serverDelta(wrnCounters{100, 5}, wrnCounters{300, 15}); got != (ServerStaleness{Reads: 200, StaleReads: 10, StalePercent: 5}) {
		t.Errorf("got %+v", got)
	}
	if got := serverDelta(wrnCounters{100, 5}, wrnCounters{100, 5}); got != (ServerStaleness{}) {
		t.Errorf("no reads: got %+v", got)
	}
}
