package main

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	v1 "github.com/quorumkv/quorumkv/api/quorumkv/v1"
	"github.com/quorumkv/quorumkv/kv/catalog"
)

// kvctl scan pages through a server whose page limit is below --limit,
// and without --limit returns every key.
func TestScanPages(t *testing.T) {
	limits := catalog.DefaultLimits()
	limits.MaxScanKeys = 3
	ep := startNode(t, limits)
	for i := range 10 {
		if code, _, errOut := kvctl(t, "--endpoints", ep, "put", fmt.Sprintf("p/%02d", i), fmt.Sprint(i)); code != 0 {
			t.Fatalf("put: exit %d, %s", code, errOut)
		}
	}
	if code, _, errOut := kvctl(t, "--endpoints", ep, "put", "q", "x"); code != 0 {
		t.Fatalf("put: exit %d, %s", code, errOut)
	}
	for _, c := range []struct {
		args []string
		want int
	}{
		{[]string{"scan", "--prefix", "p/"}, 10},
		{[]string{"scan"}, 11},
		{[]string{"scan", "--prefix", "p/", "--limit", "7"}, 7},
		{[]string{"scan", "--prefix", "p/", "--limit", "3"}, 3},
		{[]string{"scan", "--prefix", "p/", "--limit", "2"}, 2},
		{[]string{"scan", "--prefix", "p/", "--limit", "10001"}, 10},
	} {
		code, out, errOut := kvctl(t, append([]string{"--endpoints", ep}, c.args...)...)
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if code != 0 || len(lines) != c.want {
			t.Errorf("kvctl %s: exit %d, %d lines, want %d:\n%s%s", strings.Join(c.args, " "), code, len(lines), c.want, out, errOut)
			continue
		}
		for i, l := range lines {
			want := fmt.Sprintf("p/%02d\t%d", i, i)
			if i == 10 {
				want = "q\tx"
			}
			if l != want {
				t.Errorf("kvctl %s: line %d is %q, want %q", strings.Join(c.args, " "), i, l, want)
			}
		}
	}
}

// Plain scan output splits at the first tab of a line, and a field that
// starts with a double quote is quoted: keys and values with spaces, tabs,
// newlines, quotes, backslashes and bytes that are not UTF-8 come back
// exactly.
func TestScanPlainFormatIsUnambiguous(t *testing.T) {
	ep := startNode(t, catalog.Limits{})
	kvs := map[string]string{
		"a key with spaces": "a value with spaces",
		"tab\tkey":          "tab\tvalue",
		"new\nline":         "new\nline\n",
		`"quoted"`:          `"quoted" value`,
		`back\slash`:        `back\slash`,
		"\xff\xfebinary":    "\x00\x01\xc3",
		"empty":             "",
		"trailing space ":   " leading space",
		"unicode é 世界":      "ü",
	}
	for k, v := range kvs {
		if code, _, errOut := kvctlIn(t, []byte(v), "--endpoints", ep, "-k", "default", "put", "--", k, "-"); code != 0 {
			t.Fatalf("put %q: exit %d, %s", k, code, errOut)
		}
	}
	code, out, errOut := kvctl(t, "--endpoints", ep, "scan")
	if code != 0 {
		t.Fatalf("scan: exit %d, %s", code, errOut)
	}
	unquote := func(f string) string {
		if !strings.HasPrefix(f, `"`) {
			return f
		}
		s, err := strconv.Unquote(f)
		if err != nil {
			t.Fatalf("field %s: %v", f, err)
		}
		return s
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		k, v, ok := strings.Cut(line, "\t")
		if !ok {
			t.Fatalf("line %q has no tab", line)
		}
		got[unquote(k)] = unquote(v)
	}
	for k, v := range kvs {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("key %q: scan gave %q (present %v), want %q\n%s", k, g, ok, v, out)
		}
	}
	if len(got) != len(kvs) {
		t.Errorf("scan gave %d keys, want %d:\n%s", len(got), len(kvs), out)
	}
	// Text is printed as it is.
	if !strings.Contains(out, "a key with spaces\ta value with spaces\n") || !strings.Contains(out, "unicode é 世界\tü\n") {
		t.Errorf("plain text was quoted:\n%s", out)
	}
}

var (
	snakeCase = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	enumStyle = regexp.MustCompile(`^[A-Z][A-Z0-9]*_[A-Z0-9_]+$`)
)

// checkJSONStyle fails on field names that are not lower_snake_case and
// string values in the style of protobuf enum names.
func checkJSONStyle(t *testing.T, what string, v any) {
	t.Helper()
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if !snakeCase.MatchString(k) {
				t.Errorf("%s: field %q is not lower_snake_case", what, k)
			}
			checkJSONStyle(t, what+"."+k, x)
		}
	case []any:
		for i, x := range v {
			checkJSONStyle(t, fmt.Sprintf("%s[%d]", what, i), x)
		}
	case string:
		if enumStyle.MatchString(v) {
			t.Errorf("%s: %q looks like a protobuf enum name", what, v)
		}
	}
}

// Every -o json output uses lower_snake_case fields and lower-case enum
// values; keys and values are base64 in key_base64 and value_base64.
func TestJSONOutput(t *testing.T) {
	ep := startNode(t, catalog.Limits{})
	key, value := "\xff\xfek", "v\x00\xc3"
	if code, _, errOut := kvctlIn(t, []byte(value), "--endpoints", ep, "put", key, "-"); code != 0 {
		t.Fatalf("put: exit %d, %s", code, errOut)
	}
	outputs := map[string]any{}
	for _, args := range [][]string{
		{"get", key}, {"scan"}, {"put", "k2", "v2"}, {"del", "k2"}, {"keyspace", "list"}, {"keyspace", "describe", "default"},
		{"cluster", "members"}, {"cluster", "ranges"}, {"cluster", "status"},
	} {
		code, out, errOut := kvctl(t, append([]string{"--endpoints", ep, "-o", "json"}, args...)...)
		if code != 0 {
			t.Errorf("kvctl %s -o json: exit %d, %s", strings.Join(args, " "), code, errOut)
			continue
		}
		var v any
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Errorf("kvctl %s -o json: %v:\n%s", strings.Join(args, " "), err, out)
			continue
		}
		checkJSONStyle(t, strings.Join(args, " "), v)
		outputs[strings.Join(args, " ")] = v
	}
	var got kvJSON
	if code, out, _ := kvctl(t, "--endpoints", ep, "-o", "json", "get", key); code != 0 || json.Unmarshal([]byte(out), &got) != nil ||
		string(got.Key) != key || string(got.Value) != value || got.Version == "" ||
		!strings.Contains(out, `"key_base64": "//5r"`) {
		t.Errorf("get -o json: %s, decoded %+v", out, got)
	}
	var list []kvJSON
	if code, out, _ := kvctl(t, "--endpoints", ep, "-o", "json", "scan"); code != 0 || json.Unmarshal([]byte(out), &list) != nil ||
		len(list) != 1 || string(list[0].Key) != key || string(list[0].Value) != value {
		t.Errorf("scan -o json: %s", out)
	}
	ks := outputs["keyspace list"].(map[string]any)["keyspaces"].([]any)[0].(map[string]any)
	if ks["name"] != "default" || ks["mode"] != "raft" || ks["replicas"] != 1.0 {
		t.Errorf("keyspace list -o json: %v", ks)
	}
	if d := outputs["keyspace describe default"].(map[string]any); d["keyspace"].(map[string]any)["mode"] != "raft" || len(d["ranges"].([]any)) != 8 {
		t.Errorf("keyspace describe -o json: %v", d)
	}
	if r := outputs["cluster ranges"].(map[string]any)["ranges"].([]any); len(r) != 8 || r[0].(map[string]any)["range_id"] == nil {
		t.Errorf("cluster ranges -o json: %v", r)
	}
	if st := outputs["cluster status"].(map[string]any); st["node_id"] != "n1" {
		t.Errorf("cluster status -o json: %v", st)
	}
}

func TestEnumJSON(t *testing.T) {
	for in, want := range map[string]string{"Mode": "MODE", "MemberState": "MEMBER_STATE", "GossipKeyOp": "GOSSIP_KEY_OP", "V1Thing": "V1_THING"} {
		if got := upperSnake(in); got != want {
			t.Errorf("upperSnake(%q) = %q, want %q", in, got, want)
		}
	}
}

// Members, with their enum states and 64-bit IDs (strings, as in the
// proto3 JSON mapping), in kvctl's JSON style; a range's hash span keeps
// every bit.
func TestProtoJSONStyle(t *testing.T) {
	var out strings.Builder
	err := writeProtoJSON(&out, &v1.ListMembersResponse{Members: []*v1.Member{
		{Id: 3, NodeId: "n3", State: v1.MemberState_MEMBER_STATE_ALIVE, Decommissioning: true},
		{NodeId: "n4", State: v1.MemberState_MEMBER_STATE_UNSPECIFIED},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Members []map[string]any `json:"members"`
	}
	if err := json.Unmarshal([]byte(out.String()), &got); err != nil {
		t.Fatal(err)
	}
	m := got.Members[0]
	if m["id"] != "3" || m["node_id"] != "n3" || m["state"] != "alive" || m["decommissioning"] != true || got.Members[1]["state"] != "unspecified" {
		t.Errorf("members in JSON:\n%s", out.String())
	}
	var v any
	json.Unmarshal([]byte(out.String()), &v)
	checkJSONStyle(t, "members", v)

	out.Reset()
	if err := writeProtoJSON(&out, &v1.Range{RangeId: 7, HashHi: 1<<64 - 1}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"range_id": "7"`) || !strings.Contains(out.String(), `"hash_hi": "18446744073709551615"`) {
		t.Errorf("a range in JSON:\n%s", out.String())
	}
}
