//go:build amd64 || arm64

package stack

// Grow: see stack.go. The body is in grow_asm.s; requestStackBytes and
// the frame size there must agree (TestFrameSize).
func Grow()
