// Package e2e holds end-to-end tests: they build kvd and kvctl, start real
// kvd processes on 127.0.0.1 ports, and drive them the way a user would,
// with kvctl and plain HTTP.
package e2e
