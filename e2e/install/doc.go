// Package install tests the installation the docs describe
// (docs/install.md): the repository's Dockerfile builds an image of
// static binaries, and compose.yaml runs a 3-node cluster of it.
//
// The test needs Docker and docker-compose (or the docker compose
// plugin), pulls nothing, and runs only when asked:
//
//	QKV_DOCKER=1 go test -count=1 -run TestCompose ./e2e/install/
//
// Everything it makes (the image, and the compose project's containers,
// network and volumes) carries its run's name and is removed at its end,
// failed or not.
package install
