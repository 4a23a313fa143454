//go:build amd64 || arm64

package sqlitesafe

import "unsafe"

// getfp returns the frame pointer of its caller (or of the ABI wrapper
// between the two): callsite_amd64.s, callsite_arm64.s.
func getfp() unsafe.Pointer

// captureSite records the return addresses of its caller's callers by
// walking the frame pointers, as the runtime's execution tracer does: a few
// nanoseconds, where runtime.Callers, which consults the functions' tables
// at every frame, took about 1.5 µs on the stack of a write. The addresses
// are of physical frames; runtime.CallersFrames expands the inlined calls
// when String turns them into file:line. Frames of this package at the
// bottom are not removed here: String skips them anyway.
func captureSite() callSite {
	var s callSite
	fp := getfp()
	// No function is called in the walk, so the stack cannot move
	// beneath it; the goroutine's first frame has a frame pointer of 0.
	for s.n < maxSitePCs && fp != nil {
		pc := *(*uintptr)(unsafe.Add(fp, unsafe.Sizeof(fp)))
		if pc == 0 {
			break
		}
		s.pcs[s.n] = pc
		s.n++
		fp = *(*unsafe.Pointer)(fp)
	}
	return s
}
