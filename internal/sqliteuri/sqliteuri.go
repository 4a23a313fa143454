// Package sqliteuri writes file names as SQLite "file:" URIs.
package sqliteuri

import (
	"fmt"
	"strings"
)

// FromPath returns path as the start of a "file:" URI, to which a query
// ("?mode=ro") may be added: '%', '?' and '#' are escaped, since they would
// otherwise end the path or change it, and an absolute path gets an empty
// authority ("file:///abs"), so that one beginning with "//" is not read as
// a host.
func FromPath(path string) string {
	var b strings.Builder
	b.WriteString("file:")
	if strings.HasPrefix(path, "/") {
		b.WriteString("//")
	}
	for i := 0; i < len(path); i++ {
		switch c := path[i]; c {
		case '%', '?', '#':
			fmt.Fprintf(&b, "%%%02X", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
