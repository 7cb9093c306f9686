package storage

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if goroutines outlive them: Close must
// stop everything Open started, Pebble's background work and the disk-health
// checker that Open adds for the OS filesystem included.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
