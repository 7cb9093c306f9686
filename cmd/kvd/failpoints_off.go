//go:build !qkv_failpoints

package main

import (
	"log/slog"
	"os"
)

// loadFailpoints: this build has none (failpoints_on.go has them).
func loadFailpoints(_ *testHooks, logger *slog.Logger) error {
	if path := os.Getenv(failpointsEnv); path != "" {
		logger.Warn("ignoring the test-only failpoints: this kvd was built without the qkv_failpoints tag", failpointsEnv, path)
	}
	return nil
}
