package road

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/quorumkv/quorumkv/lab"
)

// docs/lab.md shows the tables `kvctl lab all` and `kvctl lab all --seeds
// 100` print, and pictures `kvctl lab NAME --svg` draws. This test fails
// when the code prints something else; QKV_UPDATE_DOCS=1 rewrites them.
func TestDocsAreCurrent(t *testing.T) {
	const doc = "../../docs/lab.md"
	update := os.Getenv("QKV_UPDATE_DOCS") != ""
	b, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)

	var all []*lab.Result
	var tallies []Tally
	for _, s := range Scenarios() {
		if s.Sim == nil {
			continue
		}
		r, err := RunSim(s, 1)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, r)
		tally, err := Sweep(s, 1, 100)
		if err != nil {
			t.Fatal(err)
		}
		tallies = append(tallies, tally)
	}
	var table, sweep bytes.Buffer
	if err := lab.WriteTable(&table, all); err != nil {
		t.Fatal(err)
	}
	if err := WriteSweep(&sweep, tallies); err != nil {
		t.Fatal(err)
	}
	for _, block := range []struct{ marker, want string }{
		{"kvctl lab all", table.String()},
		{"kvctl lab all --seeds 100", sweep.String()},
	} {
		re := regexp.MustCompile(`(?s)(<!-- ` + regexp.QuoteMeta(block.marker) + ` -->\n)(.*?)(<!-- end -->)`)
		m := re.FindStringSubmatch(text)
		if m == nil {
			t.Fatalf("%s has no block <!-- %s --> ... <!-- end -->", doc, block.marker)
		}
		want := "```\n" + block.want + "```\n"
		if m[2] == want {
			continue
		}
		if update {
			text = strings.Replace(text, m[0], m[1]+want+m[3], 1)
			continue
		}
		t.Errorf("%s: the block %q is not what the code prints now (QKV_UPDATE_DOCS=1 go test ./lab/road rewrites it):\n%s", doc, block.marker, want)
	}
	if update {
		if err := os.WriteFile(doc, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Every picture the page shows is what its scenario draws now.
	pics := regexp.MustCompile(`\]\(lab/([0-9a-z]+)-([a-z-]+)\.svg\)`).FindAllStringSubmatch(text, -1)
	if len(pics) < 2 {
		t.Fatalf("%s shows %d pictures, want at least 2", doc, len(pics))
	}
	for _, p := range pics {
		s, err := Find(p[2])
		if err != nil {
			t.Fatal(err)
		}
		r, err := RunSim(s, 1)
		if err != nil {
			t.Fatal(err)
		}
		if r.Label() != p[1] {
			t.Errorf("picture lab/%s-%s.svg: the scenario is %s", p[1], p[2], r.Label())
		}
		var svg bytes.Buffer
		if err := lab.SVG(&svg, r); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("../../docs/lab", p[1]+"-"+p[2]+".svg")
		got, err := os.ReadFile(path)
		if update {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, svg.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err != nil || !bytes.Equal(got, svg.Bytes()) {
			t.Errorf("%s is not what kvctl lab %s --svg draws now (QKV_UPDATE_DOCS=1 go test ./lab/road redraws it)", path, p[2])
		}
	}
}
