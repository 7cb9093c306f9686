package stack

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// deep uses about depth*256 bytes of stack, as a request's deep path does.
//
//go:noinline
func deep(depth int) byte {
	var pad [200]byte
	pad[depth%len(pad)] = byte(depth)
	if depth == 0 {
		return pad[0]
	}
	return deep(depth-1) + pad[depth%len(pad)]
}

// BenchmarkRequestGoroutine compares a new goroutine that runs a deep call
// (about 12 KiB of stack) as it comes, growing its stack on the way, with
// one that calls Grow first. Run with
// go test -run '^$' -bench RequestGoroutine ./internal/stack.
func BenchmarkRequestGoroutine(b *testing.B) {
	for _, c := range []struct {
		name string
		grow bool
	}{{"as-is", false}, {"Grow", true}} {
		b.Run(c.name, func(b *testing.B) {
			done := make(chan byte)
			for range b.N {
				go func() {
					if c.grow {
						Grow()
					}
					done <- deep(48)
				}()
				<-done
			}
		})
	}
}

// The assembly frame of Grow is the size stack.go documents.
func TestFrameSize(t *testing.T) {
	src, err := os.ReadFile("grow_asm.s")
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("TEXT ·Grow(SB), 0, $%d-0", requestStackBytes)
	if !strings.Contains(string(src), want) {
		t.Errorf("grow_asm.s does not declare %q", want)
	}
}
