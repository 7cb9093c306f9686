package wrn

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/quorumkv/quorumkv/quorum"
)

// TestDataDriven runs the scripts in testdata/scripts. Commands:
//
//	quorums n=N w=W r=R          sizes over replicas 1..N
//	quorums geometry=G nodes=L   a geometry over a node list (see quorum)
//	write [sloppy]               start a write; then lines, one per event:
//	    ack I | fail I reason | hint I
//	read                         start a read; then lines:
//	    reply I VALUE@WALL[.LOGICAL][/NODE] | reply I absent | reply I deleted@WALL
//	    fail I reason
//
// Each event prints the state after it; a write or read ends with its
// outcome: the error, or the winner and the replicas to repair.
func TestDataDriven(t *testing.T) {
	var q Quorums
	datadriven.Walk(t, "testdata/scripts", func(t *testing.T, path string) {
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			var b strings.Builder
			switch d.Cmd {
			case "quorums":
				var err error
				if d.HasArg("geometry") {
					var geo, nodes string
					d.ScanArgs(t, "geometry", &geo)
					d.ScanArgs(t, "nodes", &nodes)
					l, perr := quorum.ParseNodeList(nodes)
					if perr != nil {
						return "error: " + perr.Error() + "\n"
					}
					sys, perr := quorum.Parse(geo, l.Nodes)
					if perr != nil {
						return "error: " + perr.Error() + "\n"
					}
					q = GeometryQuorums(sys)
				} else {
					var n, w, r int
					d.ScanArgs(t, "n", &n)
					d.ScanArgs(t, "w", &w)
					d.ScanArgs(t, "r", &r)
					var ids []uint64
					for i := 1; i <= n; i++ {
						ids = append(ids, uint64(i))
					}
					if q, err = SizeQuorums(ids, w, r); err != nil {
						return "error: " + err.Error() + "\n"
					}
				}
				fmt.Fprintf(&b, "write sets: %s\nread sets: %s\nreads see every acknowledged write: %v\n",
					q.describe(quorum.Phase2), q.describe(quorum.Phase1), q.Intersect())
			case "write":
				w := q.NewWrite(d.HasArg("sloppy"))
				for _, line := range lines(d.Input) {
					f := strings.Fields(line)
					id := mustID(t, d, f[1])
					switch f[0] {
					case "ack":
						w.Ack(id)
					case "fail":
						w.Fail(id, strings.Join(f[2:], " "))
					case "hint":
						w.Hinted(id)
					default:
						d.Fatalf(t, "unknown write event %q", line)
					}
					fmt.Fprintf(&b, "%-24s -> %s\n", line, w.State())
				}
				if w.State() == Done {
					fmt.Fprintf(&b, "acknowledged; not yet stored on %v\n", w.Unacknowledged())
				} else {
					fmt.Fprintf(&b, "error: %v\n", w.Err())
				}
			case "read":
				r := q.NewRead()
				for _, line := range lines(d.Input) {
					f := strings.Fields(line)
					id := mustID(t, d, f[1])
					switch f[0] {
					case "reply":
						r.Reply(id, parseRecord(t, d, f[2]))
					case "fail":
						r.Fail(id, strings.Join(f[2:], " "))
					default:
						d.Fatalf(t, "unknown read event %q", line)
					}
					fmt.Fprintf(&b, "%-24s -> %s\n", line, r.State())
				}
				if r.State() != Done {
					fmt.Fprintf(&b, "error: %v\n", r.Err())
					break
				}
				res := r.Result()
				switch {
				case res.Version.IsZero():
					b.WriteString("result: not found\n")
				case res.Tombstone:
					fmt.Fprintf(&b, "result: deleted at %s\n", short(res.Version))
				default:
					fmt.Fprintf(&b, "result: %s at %s\n", res.Value, short(res.Version))
				}
				fmt.Fprintf(&b, "repair: %v\n", r.Stale())
			default:
				d.Fatalf(t, "unknown command %q", d.Cmd)
			}
			return b.String()
		})
	})
}

func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func mustID(t *testing.T, d *datadriven.TestData, s string) uint64 {
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		d.Fatalf(t, "bad replica %q", s)
	}
	return id
}

// parseRecord reads VALUE@WALL[.LOGICAL][/NODE], absent, or deleted@WALL.
func parseRecord(t *testing.T, d *datadriven.TestData, s string) Record {
	if s == "absent" {
		return Record{}
	}
	val, at, ok := strings.Cut(s, "@")
	if !ok {
		d.Fatalf(t, "bad record %q", s)
	}
	node := uint64(1)
	if a, n, ok := strings.Cut(at, "/"); ok {
		at, node = a, mustID(t, d, n)
	}
	wall, logical, _ := strings.Cut(at, ".")
	w, err := strconv.ParseInt(wall, 10, 64)
	if err != nil {
		d.Fatalf(t, "bad time in %q", s)
	}
	var l uint64
	if logical != "" {
		l, _ = strconv.ParseUint(logical, 10, 32)
	}
	rec := Record{Version: Version{Timestamp{w, uint32(l)}, node}, Value: []byte(val)}
	if val == "deleted" {
		rec.Value, rec.Tombstone = nil, true
	}
	return rec
}

func short(v Version) string {
	return fmt.Sprintf("%d.%d/%d", v.Timestamp.WallTime, v.Timestamp.Logical, v.Node)
}
