//go:build !qkv_canary

package main

import (
	"log/slog"
	"os"
)

// loadCanary: this build plants no bug (canary_on.go does).
func loadCanary(_ *testHooks, logger *slog.Logger) error {
	if names := os.Getenv(canaryEnv); names != "" {
		logger.Warn("ignoring the test-only canaries: this kvd was built without the qkv_canary tag", canaryEnv, names)
	}
	return nil
}
