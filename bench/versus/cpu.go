package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"time"
)

// Server CPU is read from /proc/<pid>/stat: utime and stime, the time the
// process (all its threads) spent in user and kernel mode, in clock ticks
// (USER_HZ, 100 per second on Linux). A run reads them for every server
// process of the system under test before and after, so its CPU per
// operation includes everything the servers did meanwhile: replication,
// fsync syscalls, compactions, heartbeats, logging.

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times.
var clockTicks = readClockTicks()

// readClockTicks reads AT_CLKTCK from this process's auxiliary vector
// (sysconf(_SC_CLK_TCK) without cgo); 100 if it cannot.
func readClockTicks() int64 {
	b, err := os.ReadFile("/proc/self/auxv")
	if err != nil {
		return 100
	}
	if hz := auxvClockTicks(b); hz > 0 {
		return hz
	}
	return 100
}

// atClkTck is the auxiliary vector's key for USER_HZ.
const atClkTck = 16 + 1

// auxvClockTicks finds AT_CLKTCK in an auxiliary vector of 64-bit words
// in the machine's byte order; 0 if absent.
func auxvClockTicks(auxv []byte) int64 {
	for i := 0; i+16 <= len(auxv); i += 16 {
		key := binary.NativeEndian.Uint64(auxv[i:])
		val := binary.NativeEndian.Uint64(auxv[i+8:])
		switch key {
		case 0: // AT_NULL ends the vector
			return 0
		case atClkTck:
			return int64(val)
		}
	}
	return 0
}

// procTimes is the CPU time a process has used so far, in user and in
// kernel mode.
type procTimes struct{ user, sys time.Duration }

func (t procTimes) total() time.Duration { return t.user + t.sys }

// processTimes reads process pid's CPU times.
func processTimes(pid int) (procTimes, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procTimes{}, err
	}
	user, sys, err := parseStatTicks(b)
	if err != nil {
		return procTimes{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return procTimes{ticksToDuration(user), ticksToDuration(sys)}, nil
}

func ticksToDuration(ticks int64) time.Duration {
	return time.Duration(ticks) * time.Second / time.Duration(clockTicks)
}

// parseStatTicks returns utime and stime from the content of a
// /proc/<pid>/stat file. The command name (field 2) is in parentheses and
// may hold spaces and parentheses itself, so the fields are counted from
// the last ')': after it come field 3 (state) onwards, and utime and
// stime are fields 14 and 15.
func parseStatTicks(stat []byte) (user, sys int64, err error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("no command name in %q", stat)
	}
	fields := bytes.Fields(stat[i+1:])
	const utime, stime = 14 - 3, 15 - 3
	if len(fields) <= stime {
		return 0, 0, fmt.Errorf("%d fields after the command name, want more than %d", len(fields), stime)
	}
	if user, err = strconv.ParseInt(string(fields[utime]), 10, 64); err != nil {
		return 0, 0, err
	}
	if sys, err = strconv.ParseInt(string(fields[stime]), 10, 64); err != nil {
		return 0, 0, err
	}
	return user, sys, nil
}

// machineBusy is the CPU time all of the machine's cores have spent on
// anything but idling (or waiting for I/O) since boot, from /proc/stat's
// first line: user, nice, system, irq, softirq and steal (guest time is
// counted in user already).
func machineBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	ticks, err := parseMachineBusy(b)
	if err != nil {
		return 0, fmt.Errorf("/proc/stat: %w", err)
	}
	return ticksToDuration(ticks), nil
}

func parseMachineBusy(stat []byte) (int64, error) {
	line, _, _ := bytes.Cut(stat, []byte("\n"))
	fields := bytes.Fields(line)
	if len(fields) < 9 || string(fields[0]) != "cpu" {
		return 0, fmt.Errorf("first line %q: want cpu and at least 8 times", line)
	}
	var busy int64
	// 1 user, 2 nice, 3 system, 4 idle, 5 iowait, 6 irq, 7 softirq, 8 steal
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		n, err := strconv.ParseInt(string(fields[i]), 10, 64)
		if err != nil {
			return 0, err
		}
		busy += n
	}
	return busy, nil
}

// cpuSample is what a run reads before and after itself.
type cpuSample struct {
	// servers are the system under test's server processes, in order.
	servers []procTimes
	// others: the other system's servers, idle meanwhile.
	others time.Duration
	// self: this process, the load generator and the clients.
	self time.Duration
	// machine: every core's busy time.
	machine time.Duration
}

// sampleCPU reads the times of servers, others, this process and the
// machine.
func sampleCPU(servers, others []int) (cpuSample, error) {
	var s cpuSample
	for _, pid := range servers {
		t, err := processTimes(pid)
		if err != nil {
			return s, err
		}
		s.servers = append(s.servers, t)
	}
	for _, pid := range others {
		t, err := processTimes(pid)
		if err != nil {
			return s, err
		}
		s.others += t.total()
	}
	self, err := processTimes(selfPID)
	if err != nil {
		return s, err
	}
	s.self = self.total()
	s.machine, err = machineBusy()
	return s, err
}

// cpuUse is the CPU used between two samples.
type cpuUse struct {
	// Server is the system under test's servers' CPU; ServerSys its part
	// in the kernel (syscalls: network, fsync); ServerByProcess per
	// server process, in the order of the cluster's nodes.
	Server, ServerSys time.Duration
	ServerByProcess   []time.Duration
	// Client is this process's: the load generator and the system's
	// client library.
	Client time.Duration
	// IdleSystem is the other system's servers', idle meanwhile.
	IdleSystem time.Duration
	// Foreign is everything else the machine's cores did: processes not
	// part of the benchmark (another build or test run would show here),
	// and the kernel's work for no process.
	Foreign time.Duration
}

func (a cpuSample) until(b cpuSample) cpuUse {
	var u cpuUse
	for i := range a.servers {
		d := b.servers[i].total() - a.servers[i].total()
		u.Server += d
		u.ServerSys += b.servers[i].sys - a.servers[i].sys
		u.ServerByProcess = append(u.ServerByProcess, d)
	}
	u.Client = b.self - a.self
	u.IdleSystem = b.others - a.others
	u.Foreign = max(0, (b.machine-a.machine)-u.Server-u.Client-u.IdleSystem)
	return u
}
