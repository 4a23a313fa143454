//go:build !amd64 && !arm64

package sqlitesafe

import "runtime"

// captureSite records the stack of its caller's caller.
func captureSite() callSite {
	var s callSite
	s.n = runtime.Callers(3, s.pcs[:])
	return s
}
