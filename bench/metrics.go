package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// The server's own staleness measure of eventual keyspaces
// (docs/operations.md "Metrics"): every coordinator counts the reads it
// answered, and those that returned an older version than some replica
// held when it answered, in-flight writes included.
const (
	metricWRNReads      = "quorumkv_wrn_reads_total"
	metricWRNStaleReads = "quorumkv_wrn_stale_reads_total"
)

// maxMetricsBytes bounds how much of one /metrics answer is read. A node
// with thousands of ranges serves a few hundred KiB; more than this is not
// a kvd.
const maxMetricsBytes = 16 << 20

// ServerStaleness is the server's measure over a run: the growth of its
// counters, summed over the metrics endpoints.
type ServerStaleness struct {
	Reads        float64 `json:"reads"`
	StaleReads   float64 `json:"stale_reads"`
	StalePercent float64 `json:"stale_percent"`
	// Error says why the measure is missing (a node's /metrics could not
	// be read); the other fields are then zero.
	Error string `json:"error,omitempty"`
}

// wrnCounters is one reading of the two counters of a keyspace.
type wrnCounters struct{ reads, stale float64 }

// serverDelta is the measure between two readings.
func serverDelta(before, after wrnCounters) ServerStaleness {
	s := ServerStaleness{Reads: after.reads - before.reads, StaleReads: after.stale - before.stale}
	if s.Reads > 0 {
		s.StalePercent = 100 * s.StaleReads / s.Reads
	}
	return s
}

// readWRNCounters sums the keyspace's counters over the endpoints' /metrics.
// An endpoint is host:port (served over https if secure, else plain HTTP,
// as kvd does without TLS) or a URL base such as http://host:port.
func readWRNCounters(ctx context.Context, hc *http.Client, endpoints []string, keyspace string, secure bool) (wrnCounters, error) {
	var sum wrnCounters
	seen := map[string]bool{}
	for _, ep := range endpoints {
		if seen[ep] {
			continue // a node listed twice counts once
		}
		seen[ep] = true
		base := ep
		if !strings.Contains(ep, "://") {
			base = "http://" + ep
			if secure {
				base = "https://" + ep
			}
		}
		c, err := scrapeWRN(ctx, hc, strings.TrimSuffix(base, "/")+"/metrics", keyspace)
		if err != nil {
			return wrnCounters{}, err
		}
		sum.reads += c.reads
		sum.stale += c.stale
	}
	return sum, nil
}

func scrapeWRN(ctx context.Context, hc *http.Client, url, keyspace string) (wrnCounters, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return wrnCounters{}, fmt.Errorf("bench: metrics: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return wrnCounters{}, fmt.Errorf("bench: metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return wrnCounters{}, fmt.Errorf("bench: metrics: GET %s: %s", url, resp.Status)
	}
	c, err := parseWRN(io.LimitReader(resp.Body, maxMetricsBytes), keyspace)
	if err != nil {
		return wrnCounters{}, fmt.Errorf("bench: metrics: %s: %w", url, err)
	}
	return c, nil
}

// parseWRN reads the keyspace's series of the two counters from the
// Prometheus text format. A node that has not answered a read of the
// keyspace yet has no series for it: zero.
func parseWRN(r io.Reader, keyspace string) (wrnCounters, error) {
	var c wrnCounters
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var dst *float64
		switch {
		case strings.HasPrefix(line, metricWRNReads+"{"):
			dst = &c.reads
		case strings.HasPrefix(line, metricWRNStaleReads+"{"):
			dst = &c.stale
		default:
			continue
		}
		labels, value, err := parseSample(line)
		if err != nil {
			return wrnCounters{}, err
		}
		if labels["keyspace"] == keyspace {
			*dst += value
		}
	}
	return c, sc.Err()
}

// parseSample splits a sample line `name{k="v",...} value [timestamp]`
// into its labels and value. Label values may hold escaped quotes,
// backslashes and newlines.
func parseSample(line string) (map[string]string, float64, error) {
	open := strings.IndexByte(line, '{')
	if open < 0 {
		return nil, 0, fmt.Errorf("sample %q: no labels", line)
	}
	labels := map[string]string{}
	rest := line[open+1:]
	for {
		rest = strings.TrimLeft(rest, ", ")
		if strings.HasPrefix(rest, "}") {
			rest = rest[1:]
			break
		}
		name, after, ok := strings.Cut(rest, `="`)
		if !ok {
			return nil, 0, fmt.Errorf("sample %q: bad label", line)
		}
		var val strings.Builder
		i := 0
		for ; i < len(after) && after[i] != '"'; i++ {
			if after[i] == '\\' && i+1 < len(after) {
				i++
				if after[i] == 'n' {
					val.WriteByte('\n')
					continue
				}
			}
			val.WriteByte(after[i])
		}
		if i == len(after) {
			return nil, 0, fmt.Errorf("sample %q: unterminated label value", line)
		}
		labels[strings.TrimSpace(name)] = val.String()
		rest = after[i+1:]
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return nil, 0, fmt.Errorf("sample %q: no value", line)
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return nil, 0, fmt.Errorf("sample %q: %w", line, err)
	}
	return labels, v, nil
}
