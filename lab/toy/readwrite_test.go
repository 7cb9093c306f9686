package toy

import (
	"testing"

	"github.com/quorumkv/quorumkv/lab"
)

func TestReadThenWriteSellsTwice(t *testing.T) {
	quorumBroken(t, ReadThenWrite, lab.SoldTwice)
}
