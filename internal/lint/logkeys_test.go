package lint

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// reservedLogKey is the key kvd's logger gives every record: the node's
// name (cmd/kvd newLogger). Code below it logs a node's numeric ID under
// "node-id", so that no record carries "node" twice (a JSON decoder or a
// log query would keep one of the two).
const reservedLogKey = "node"

// logMethods are the slog calls that take key-value pairs, with the
// position of their first key (after a context, a level, a message).
var logMethods = map[string]int{
	"With": 0, "Debug": 1, "Info": 1, "Warn": 1, "Error": 1,
	"DebugContext": 2, "InfoContext": 2, "WarnContext": 2, "ErrorContext": 2, "Log": 3,
}

// reservedKeyUses lists the calls of the Go source src (named name) that
// pass reservedLogKey as a log key.
func reservedKeyUses(t *testing.T, name string, src []byte) []string {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, name, src, 0)
	if err != nil {
		t.Fatal(err)
	}
	var uses []string
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		first, ok := logMethods[sel.Sel.Name]
		if !ok {
			return true
		}
		for i := first; i < len(call.Args); i += 2 {
			if lit, ok := call.Args[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if s, err := strconv.Unquote(lit.Value); err == nil && s == reservedLogKey {
					uses = append(uses, fset.Position(lit.Pos()).String())
				}
			}
		}
		return true
	})
	return uses
}

// No code that kvd's logger reaches logs under the key "node".
func TestNoLogRecordReusesTheNodeKey(t *testing.T) {
	files := 0
	for _, dir := range []string{"kv", "membership", "storage"} {
		err := filepath.WalkDir(filepath.Join("../..", dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			files++
			for _, use := range reservedKeyUses(t, path, src) {
				t.Errorf("%s: logs under %q, the key kvd's logger gives every record; use %q for a node's ID", use, reservedLogKey, "node-id")
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if files < 50 {
		t.Fatalf("read %d Go files: the check would check nothing", files)
	}
}

// The check finds the key where it is used.
func TestReservedKeyUsesCatchesTheNodeKey(t *testing.T) {
	src := []byte(`package p
func f() {
	s.Logger.Info("founded", "cluster", c, "node", id)
	logger.With("node", n).Warn("x")
	s.Logger.Info("ok", "node-id", id, "peer", "node")
}`)
	if got := reservedKeyUses(t, "p.go", src); len(got) != 2 {
		t.Errorf("found %v, want the 2 uses on lines 3 and 4", got)
	}
}
