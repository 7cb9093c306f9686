package version

import (
	"runtime/debug"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	for _, c := range []struct {
		main     string
		settings map[string]string
		want     string
	}{
		{"v1.2.3", map[string]string{"vcs.revision": "0f48bcc5a1b2c3d4", "vcs.modified": "true"}, "v1.2.3"},
		{"(devel)", map[string]string{"vcs.revision": "0f48bcc5a1b2c3d4", "vcs.modified": "true"}, "devel+0f48bcc5a1b2-dirty"},
		{"(devel)", map[string]string{"vcs.revision": "0f48bcc5a1b2c3d4", "vcs.modified": "false"}, "devel+0f48bcc5a1b2"},
		{"(devel)", nil, "devel"},
		{"", nil, "devel"},
	} {
		bi := &debug.BuildInfo{Main: debug.Module{Version: c.main}}
		for k, v := range c.settings {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: k, Value: v})
		}
		if got := fromBuildInfo(bi); got != c.want {
			t.Errorf("main %q, settings %v: got %q, want %q", c.main, c.settings, got, c.want)
		}
	}
	if String() == "" {
		t.Error("String() is empty")
	}
}
