package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseFailpoints(t *testing.T) {
	for _, tc := range []struct {
		text string
		want failpointSettings
		err  string
	}{
		{text: "", want: failpointSettings{}},
		{text: "# nothing\n\n", want: failpointSettings{}},
		{text: "clock-offset=-3s\n", want: failpointSettings{clockOffset: -3 * time.Second}},
		{text: "disk-sync=fail\ndisk-write=fail", want: failpointSettings{failSyncs: true, failWrites: true}},
		{text: " disk-sync = delay:250ms ", want: failpointSettings{syncDelay: 250 * time.Millisecond}},
		{text: "disk-sync=delay:1s\ndisk-sync=ok", want: failpointSettings{}},
		{text: "clock-offset=3", err: "line 1 \"clock-offset=3\": clock-offset wants a duration"},
		{text: "disk-sync=slow", err: "disk-sync wants ok, fail or delay:DURATION"},
		{text: "disk-sync=delay:-1s", err: "disk-sync wants ok, fail or delay:DURATION"},
		{text: "disk-write=sometimes", err: "disk-write wants ok or fail"},
		{text: "\nclock-skew=1s", err: "line 2 \"clock-skew=1s\": unknown failpoint \"clock-skew\""},
		{text: "disk-sync", err: "want name=value"},
	} {
		got, err := parseFailpoints(tc.text)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("parseFailpoints(%q): error %v, want one saying %q", tc.text, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("parseFailpoints(%q): %v", tc.text, err)
		case tc.err == "" && got != tc.want:
			t.Errorf("parseFailpoints(%q) = %+v, want %+v", tc.text, got, tc.want)
		}
	}
}
