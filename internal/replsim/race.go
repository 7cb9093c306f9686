//go:build race

package replsim

// raceEnabled: the race detector slows the simulator about tenfold, so
// the suites run a tenth of their default seeds under it (the CI runs the
// full count without it). QKV_SIM_SEEDS still sets the count exactly.
const raceEnabled = true
