// Package version says which build of quorumkv is running, for kvd
// --version, kvctl --version and the quorumkv_build_info metric.
package version

import "runtime/debug"

// String returns the version of the running binary, read from the build
// information the Go toolchain stamps into it: the module version for a
// binary built by `go install github.com/quorumkv/quorumkv/cmd/kvd@v1.2.3`;
// otherwise "devel", followed, when the build recorded its git checkout
// (go build's default -buildvcs=auto in a git work tree), by the commit
// and "-dirty" if the work tree had uncommitted changes:
// "devel+0f48bcc5a1b2-dirty".
func String() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	return fromBuildInfo(bi)
}

func fromBuildInfo(bi *debug.BuildInfo) string {
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev string
	var dirty bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	v := "devel+" + rev[:min(12, len(rev))]
	if dirty {
		v += "-dirty"
	}
	return v
}
