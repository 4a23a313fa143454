// Package textwrap wraps the prose the commands print (the demo's on a
// file and on a dqlite cluster).
package textwrap

import "strings"

// Wrap breaks each line of s longer than width at spaces, indenting the
// continuation lines by two.
func Wrap(s string, width int) string {
	var b strings.Builder
	for i, line := range strings.Split(s, "\n") {
		if i > 0 {
			b.WriteByte('\n')
		}
		col := 0
		for j, word := range strings.Split(line, " ") {
			switch {
			case j == 0:
			case col+1+len(word) > width:
				b.WriteString("\n  ")
				col = 2
			default:
				b.WriteByte(' ')
				col++
			}
			b.WriteString(word)
			col += len(word)
		}
	}
	return b.String()
}
