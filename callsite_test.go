package sqlitesafe

import (
	"runtime"
	"slices"
	"strings"
	"testing"
)

// frames symbolises pcs as function:line, inlined calls expanded.
func frames(pcs []uintptr) []string {
	var out []string
	fr := runtime.CallersFrames(pcs)
	for {
		f, more := fr.Next()
		out = append(out, f.Function)
		if !more {
			return out
		}
	}
}

//go:noinline
func siteViaCallers() []string {
	pcs := make([]uintptr, maxSitePCs)
	n := runtime.Callers(2, pcs)
	return frames(pcs[:n])
}

//go:noinline
func siteViaCapture() []string {
	s := captureSite()
	return frames(s.pcs[:s.n])
}

// siteChain calls f through an inlined and a not inlined frame, so that the
// stacks compared have both.
//
//go:noinline
func siteChain(f func() []string) []string { return siteInlined(f) }

func siteInlined(f func() []string) []string { return f() }

// TestCaptureSiteFrames checks that the captured stack names the same
// functions, inlined ones included, as runtime.Callers gives, from the
// caller of the capturing function up, whatever the way of capturing.
func TestCaptureSiteFrames(t *testing.T) {
	t.Parallel()
	want := siteChain(siteViaCallers)
	got := siteChain(siteViaCapture)
	// captureSite may also record its own frame and the function calling
	// it: drop what comes before the frame runtime.Callers starts at.
	i := slices.Index(got, want[0])
	if i < 0 {
		t.Fatalf("captured stack %q lacks %q (runtime.Callers: %q)", got, want[0], want)
	}
	got = got[i:]
	// Both end at the goroutine's first function. runtime.Callers leaves
	// out runtime.goexit and the wrapper a go statement makes (gowrap);
	// the frame pointers show them.
	skip := func(s string) bool { return s == "runtime.goexit" || strings.Contains(s, ".gowrap") }
	want = slices.DeleteFunc(want, skip)
	got = slices.DeleteFunc(got, skip)
	if !slices.Equal(got, want) {
		t.Fatalf("captured stack\n%q\nruntime.Callers\n%q", got, want)
	}
	if !slices.Contains(got, "github.com/sqlitesafe/sqlitesafe.siteInlined") {
		t.Fatalf("no inlined frame in %q", got)
	}
}

func BenchmarkCaptureSite(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		s := captureSite()
		if s.n == 0 {
			b.Fatal("empty")
		}
	}
}

// Holders taken at one place share one copy of its site; another place
// gets its own; and a site whose hash collides with one stored is never
// given the other's addresses.
func TestInternSite(t *testing.T) {
	t.Parallel()
	var at [2]*callSite
	for i := range at {
		at[i] = hereSite() // one place, twice
	}
	other := hereSite()
	if at[0] != at[1] {
		t.Error("two holders at one place got two copies of its site")
	}
	if at[0] == other || at[0].String() == other.String() {
		t.Errorf("two places share a site: %s and %s", at[0], other)
	}
	// Two made-up sites with the same slot: each interned in turn gets
	// its own addresses back.
	a := callSite{n: 1, pcs: [maxSitePCs]uintptr{1}}
	b := callSite{n: 1}
	for pc := uintptr(2); siteSlot(&b) != siteSlot(&a); pc++ {
		b.pcs[0] = pc
	}
	for range 3 {
		for _, s := range []callSite{a, b} {
			if got := internSite(&s); *got != s {
				t.Fatalf("interned %v, got %v", s.pcs[0], got.pcs[0])
			}
		}
	}
}
