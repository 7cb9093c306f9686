//go:build amd64 || arm64

#include "textflag.h"
#include "funcdata.h"

// func Grow()
// A frame of requestStackBytes (16384) bytes that holds no pointers and
// is never written: the function's prologue grows the stack to fit it,
// and it returns.
TEXT ·Grow(SB), 0, $16384-0
	NO_LOCAL_POINTERS
	RET
