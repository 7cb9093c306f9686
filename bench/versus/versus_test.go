package main

import (
	"bytes"
	"encoding/binary"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseStatTicks(t *testing.T) {
	for _, tc := range []struct {
		name, stat string
		user, sys  int64
		wantErr    bool
	}{
		{name: "plain", stat: "1234 (kvd) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 12 0 100 0 0", user: 250, sys: 75},
		// The command name may hold spaces and parentheses.
		{name: "odd name", stat: "42 (a) b (c) R 1 42 42 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 5 0 0", user: 7, sys: 3},
		{name: "short", stat: "42 (x) R 1 2 3", wantErr: true},
		{name: "no name", stat: "42 x R", wantErr: true},
		{name: "not a number", stat: "1 (x) S 1 1 1 0 -1 0 0 0 0 0 ten 3 0", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			user, sys, err := parseStatTicks([]byte(tc.stat))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if user != tc.user || sys != tc.sys {
				t.Fatalf("got %d+%d ticks, want %d+%d", user, sys, tc.user, tc.sys)
			}
		})
	}
}

func TestAuxvClockTicks(t *testing.T) {
	auxv := func(pairs ...uint64) []byte {
		b := make([]byte, 8*len(pairs))
		for i, v := range pairs {
			binary.NativeEndian.PutUint64(b[8*i:], v)
		}
		return b
	}
	if got := auxvClockTicks(auxv(6, 4096, atClkTck, 100, 0, 0)); got != 100 {
		t.Errorf("got %d, want 100", got)
	}
	if got := auxvClockTicks(auxv(6, 4096, 0, 0, atClkTck, 250)); got != 0 {
		t.Errorf("past AT_NULL: got %d, want 0", got)
	}
	if clockTicks <= 0 {
		t.Errorf("this machine's clock ticks: %d", clockTicks)
	}
}

func TestParseMachineBusy(t *testing.T) {
	stat := "cpu  100 5 30 1000 40 2 3 7 0 0\ncpu0 50 2 15 500 20 1 1 3 0 0\n"
	if got, err := parseMachineBusy([]byte(stat)); err != nil || got != 100+5+30+2+3+7 {
		t.Errorf("got %d, %v; want %d", got, err, 100+5+30+2+3+7)
	}
	if _, err := parseMachineBusy([]byte("intr 1 2 3\n")); err == nil {
		t.Error("a file without the cpu line was accepted")
	}
}

// A run's foreign CPU is the machine's busy time less the benchmark's
// processes'.
func TestCPUUse(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	a := cpuSample{servers: []procTimes{{ms(10), ms(5)}, {ms(20), ms(0)}}, others: ms(100), self: ms(50), machine: ms(1000)}
	b := cpuSample{servers: []procTimes{{ms(110), ms(55)}, {ms(70), ms(30)}}, others: ms(110), self: ms(90), machine: ms(1500)}
	u := a.until(b)
	want := cpuUse{Server: ms(230), ServerSys: ms(80), ServerByProcess: []time.Duration{ms(150), ms(80)},
		Client: ms(40), IdleSystem: ms(10), Foreign: ms(500 - 230 - 40 - 10)}
	if !reflect.DeepEqual(u, want) {
		t.Errorf("got %+v\nwant %+v", u, want)
	}
	if _, err := sampleCPU([]int{selfPID}, nil); err != nil {
		t.Errorf("sampling this process: %v", err)
	}
}

func TestKeyName(t *testing.T) {
	for i, want := range map[int]string{0: "k0000000", 42: "k0000042", 9_999_999: "k9999999", 12_345_678: "k12345678"} {
		if got := string(keyName(i)); got != want {
			t.Errorf("keyName(%d) = %q, want %q", i, got, want)
		}
	}
}

// Each baseline runs once per round, right before the first workload
// that needs it.
func TestPlanRounds(t *testing.T) {
	ws, err := selectWorkloads("raft-put,paxos-put,raft-get,raft-put-1-client")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range planRounds(ws, 2) {
		got = append(got, s.system()+":"+s.name())
	}
	want := "etcd:put quorumkv:raft-put quorumkv:paxos-put etcd:get quorumkv:raft-get etcd:put, 1 client quorumkv:raft-put-1-client"
	if g := strings.Join(got, " "); g != want+" "+want {
		t.Errorf("plan:\n%s\nwant twice:\n%s", g, want)
	}
}

func TestSelectWorkloads(t *testing.T) {
	if ws, err := selectWorkloads("all"); err != nil || len(ws) != len(allWorkloads) {
		t.Errorf("all: %d workloads, %v", len(ws), err)
	}
	if _, err := selectWorkloads("raft-put,nope"); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("unknown workload: %v", err)
	}
	if _, err := selectWorkloads(" , "); err == nil {
		t.Error("an empty list was accepted")
	}
}

// The rows pair each workload with its baseline and compute the ratios
// from the rounds' sums.
func TestReportRows(t *testing.T) {
	ws, err := selectWorkloads("raft-put,paxos-put")
	if err != nil {
		t.Fatal(err)
	}
	r := newReport(config{Clients: 10, Duration: time.Second, Rounds: 2}, ".", ws)
	result := func(ops int64, cpu time.Duration, latencyMicros int64) runResult {
		res := runResult{Ops: ops, Elapsed: time.Second, CPU: cpuUse{Server: cpu}, hist: newHist()}
		for range ops {
			_ = res.hist.RecordValue(latencyMicros)
		}
		return res
	}
	for _, s := range planRounds(ws, 2) {
		switch s.key() {
		case "raft-put":
			r.add(s, result(500, 400*time.Millisecond, 4000))
		case "paxos-put":
			r.add(s, result(1000, 500*time.Millisecond, 2000))
		default: // the etcd put
			r.add(s, result(1000, 200*time.Millisecond, 1000))
		}
	}
	r.finish()
	if len(r.Rows) != 2 {
		t.Fatalf("%d rows, want 2", len(r.Rows))
	}
	raft := r.Rows[0]
	if raft.ThroughputRatio != 0.5 || raft.CPURatio != 4 || raft.Etcd.ServerCPUPerOp != 200 || raft.QuorumKV.ServerCPUPerOp != 800 {
		t.Errorf("raft row: %+v", raft)
	}
	// HDR histograms keep three significant digits.
	if math.Abs(raft.QuorumKV.P50Ms-4) > 0.004 || math.Abs(raft.Etcd.P99Ms-1) > 0.001 {
		t.Errorf("raft latencies: quorumkv p50 %v, etcd p99 %v", raft.QuorumKV.P50Ms, raft.Etcd.P99Ms)
	}
	var out bytes.Buffer
	if err := r.writeTable(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"raft-put", "paxos-put", "0.50×", "4.00×", "4.00 / 4.00"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}
