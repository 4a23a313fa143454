package textwrap

import "testing"

func TestWrap(t *testing.T) {
	for _, tt := range []struct {
		in    string
		width int
		want  string
	}{
		{"short line", 20, "short line"},
		{"one two three four", 9, "one two\n  three\n  four"},
		{"a\nb c", 3, "a\nb c"},
		{"averyveryverylongword x", 5, "averyveryverylongword\n  x"},
	} {
		if got := Wrap(tt.in, tt.width); got != tt.want {
			t.Errorf("Wrap(%q, %d) = %q, want %q", tt.in, tt.width, got, tt.want)
		}
	}
}
