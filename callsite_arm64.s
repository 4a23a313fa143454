#include "textflag.h"

// func getfp() uintptr
TEXT ·getfp(SB),NOSPLIT|NOFRAME,$0-8
	MOVD R29, ret+0(FP)
	RET
