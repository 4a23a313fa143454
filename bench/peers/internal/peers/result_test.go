package peers

import (
	"strings"
	"testing"
)

func TestParseResult(t *testing.T) {
	out := "a line a library printed\n" +
		`{"config":"mattn","workload":"W1-8","sqlite_version":"3.54.1","streams":[{"name":"inserts","calls":10,"ops":10,"per_sec":100,"p99_ns":5}],"seconds":0.1}` +
		"\n\n"
	r, err := ParseResult([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if r.Config != "mattn" || r.Workload != "W1-8" || len(r.Streams) != 1 || r.Streams[0].PerSec != 100 || r.Streams[0].P99 != 5 {
		t.Fatalf("ParseResult = %+v", r)
	}
	for _, tc := range []struct{ out, want string }{
		{"", "no result"},
		{"panic: runtime error\n", "no result"},
		{`{"config":"mattn",`, "not valid JSON"},
		{`{"config":"mattn","workload":"W1-8","streams":[]}`, "no configuration, workload or stream"},
	} {
		if _, err := ParseResult([]byte(tc.out)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseResult(%q): error %v, want one saying %q", tc.out, err, tc.want)
		}
	}
}
