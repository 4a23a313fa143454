//go:build !linux

package safefile

import (
	"errors"
	"io"
	"os"
)

// Prefix returns the first n bytes of the file at path, or fewer if it is
// shorter. Without Linux's /proc/self/fd it cannot tell whether the process
// has the file open: it opens, reads and closes it, and the caller must
// know that no lock of the process is on the file.
func Prefix(path string, n int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, n)
	k, err := io.ReadFull(f, b)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b[:k], nil
}
